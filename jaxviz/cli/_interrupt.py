"""Ctrl-C answered within seconds, even while Python cannot run its handler.

Python raises ``KeyboardInterrupt`` only when the main thread next runs bytecode; inside a long C call (an XLA
compilation of a large program takes minutes on a busy CPU) a Ctrl-C would wait for the call to end. The console
script therefore asks the C-level signal handler to write each signal to a socket (``signal.set_wakeup_fd``),
and a watcher thread that reads it gives the main thread :data:`GRACE_S` seconds to print the interrupted line
itself; if it has not by then, the watcher prints it and ends the process. Nothing is lost either way: every
output and checkpoint is written to a temporary file and renamed, so an ended process leaves the last complete
one behind.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time

from jaxviz.cli._common import EXIT_INTERRUPTED

GRACE_S = 2.0

_lock = threading.Lock()
_answered = False
_line = "jaxviz: interrupted"
_sockets: tuple[socket.socket, socket.socket] | None = None


def expect(resumes: bool) -> None:
    """Sets what an interrupted run prints (:func:`jaxviz.cli.main` calls it once it knows the command)."""
    global _answered, _line
    with _lock:
        _answered = False
        _line = "jaxviz: interrupted; rerun to resume" if resumes else "jaxviz: interrupted"


def answer() -> None:
    """Prints the interrupted line once, whichever thread gets here first."""
    global _answered
    with _lock:
        if not _answered:
            _answered = True
            print(_line, file=sys.stderr, flush=True)


def _watch(reader: socket.socket) -> None:
    while signal.SIGINT not in (got := reader.recv(64)):
        if not got:  # the writing end closed: nothing more will come
            return
    time.sleep(GRACE_S)
    with _lock:
        if _answered:  # the main thread got there: it ends the process itself
            return
    answer()
    sys.stdout.flush()
    os._exit(EXIT_INTERRUPTED)


def _unraisable(hook):
    """A Ctrl-C that lands in a callback Python cannot raise from (JAX's garbage-collection hook, say) is
    swallowed there with a traceback: answer it instead, and end the process, since nothing else will see it."""

    def handle(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            answer()
            sys.stdout.flush()
            os._exit(EXIT_INTERRUPTED)
        hook(unraisable)

    return handle


def install() -> None:
    """Starts the watcher (the console script calls this; in-process callers of ``main`` keep Python's own)."""
    if threading.current_thread() is not threading.main_thread():
        return
    global _sockets
    _sockets = reader, writer = socket.socketpair()  # kept: a collected writer would close the pair
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(reader,), name="jaxviz-ctrl-c", daemon=True).start()
    sys.unraisablehook = _unraisable(sys.unraisablehook)
