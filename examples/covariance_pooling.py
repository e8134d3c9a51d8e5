"""Global covariance pooling vs global average pooling on the digits CNN: the README's table.

    python examples/covariance_pooling.py            # 2 seeds x 2 heads, about a minute each on 2 CPU cores

Same data (scikit-learn's digits at 32 px, 359 held out), steps (500, batch 64, Adam with cosine decay,
random 2 px shifts) and seeds for both heads; only the pooling differs.
"""

import jax

from jaxviz.datafree import training
from jaxviz.experiments import digits
from jaxviz.models import digits_cnn

data = digits.load()
print("| head | " + " | ".join(f"seed {s}" for s in (0, 1)) + " |\n|---|---:|---:|")
for pool, label in (("avg", "global average pooling"), ("cov", "global covariance pooling, iSQRT")):
    model, cells = digits_cnn.build(pool=pool), []
    for seed in (0, 1):
        variables, _ = training.fit(jax.random.key(seed), model, data.train_images,
                                    digits.one_hot(data.train_labels), steps=500, max_shift=2)
        cells.append(f"{digits.accuracy(model, variables, data.test_images, data.test_labels):.3f}")
    print(f"| {label} | " + " | ".join(cells) + " |")
