"""Capture through Wireshark's dumpcap, for sites where only it may capture.

pyshark builds and checks the capture command (it validates the interface
against ``tshark -D`` and knows where dumpcap lives); the command is the
dumpcap half of ``pyshark.LiveCapture``: ``dumpcap -q [-f BPF] -i IF -w -``.
Its pcapng output is read straight into our decoder. pyshark's own per-packet
path (tshark dissecting to JSON, a Python object per packet) costs about a
hundred times more than our decoder, so the dissection half is not used.

A reader thread parses the pipe and queues chunks; ``chunks()`` yields them,
or ``None`` every ``poll_interval`` without traffic. Kernel drops are not
visible through dumpcap while it runs (it reports them in its final
statistics block), so this engine exports no drop counter.
"""

import queue
import subprocess
import threading
import time

from ..errors import CaptureError
from .files import PcapngStream


class TsharkCapture:
    def __init__(self, names, bpf_filter=None, poll_interval=0.5):
        try:
            import pyshark
            from pyshark.tshark.tshark import get_process_path
            capture = pyshark.LiveCapture(interface=list(names), bpf_filter=bpf_filter)
            capture._verify_capture_parameters()
            command = [get_process_path(process_name="dumpcap")] + capture._get_dumpcap_parameters()
        except Exception as exc:                      # pyshark raises its own hierarchy and plain ones
            raise CaptureError(f"tshark engine: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
        self.command = command
        self.poll_interval = poll_interval
        try:
            self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        except OSError as exc:
            raise CaptureError(f"cannot start dumpcap: {exc.strerror or exc}") from None
        self.stream = PcapngStream(self.proc.stdout, "dumpcap")
        self.interfaces = self.stream.interfaces
        self.queue = queue.Queue(maxsize=64)
        self.closed = False
        self.thread = threading.Thread(target=self._read, name="dumpcap-reader", daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for chunk in self.stream.chunks():
                self.queue.put(chunk)
        finally:
            self.queue.put(StopIteration)

    def chunks(self):
        while not self.closed:
            try:
                item = self.queue.get(timeout=self.poll_interval)
            except queue.Empty:
                yield None
                continue
            if item is StopIteration:
                if not self.closed:
                    self.closed = True
                    raise CaptureError(f"dumpcap stopped: {self._stderr()}")
                return
            yield item

    def _stderr(self):
        try:
            self.proc.wait(timeout=2)
            text = self.proc.stderr.read().decode("utf-8", "replace").strip()
        except (subprocess.TimeoutExpired, OSError, ValueError):
            text = ""
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {self.proc.returncode}"

    def drops(self):
        return {}                  # dumpcap's pcapng stream carries no kernel statistics

    def received(self):
        return {}

    def now(self):
        return time.time()

    def close(self):
        self.closed = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for fh in (self.proc.stdout, self.proc.stderr):
            try:
                fh.close()
            except OSError:
                pass


__all__ = ["TsharkCapture"]
