"""Emulators share nothing: the same guest twice in one process, and several side by side in threads."""
from __future__ import annotations

import io
import threading

from bdemu import Emulator
from conftest import ROOT, sample

GUESTS = [("x86_64", "compute", ["1000"]), ("aarch64", "compute", ["1000"]), ("x86_64", "hello", []),
          ("aarch64", "fileio", None)]


def _run(isa: str, name: str, args, tmp_path, max_insns: int | None = None):
    guest = str(ROOT / sample(isa, name))
    arguments = args if args is not None else [str(tmp_path / f"{isa}-{threading.get_ident()}")]
    if args is None:
        (tmp_path / f"{isa}-{threading.get_ident()}").mkdir(exist_ok=True)
    emu = Emulator(guest, argv=[guest, *arguments], env={"LANG": "C"})
    emu.output = io.StringIO()
    counter = emu.add_plugin("insncount")
    result = emu.run(capture_output=True, max_insns=max_insns)
    return (result.exit_code, result.reason, result.stdout.replace(str(tmp_path).encode(), b"{tmp}"),
            result.stderr, counter.total, emu.memory.maps_text())


def test_the_same_guest_twice_in_one_process(tmp_path):
    for isa, name, args in GUESTS:
        first = _run(isa, name, args, tmp_path)
        second = _run(isa, name, args, tmp_path)
        assert first == second
        assert first[0] == 0 and first[4] > 1000


def test_emulators_side_by_side_in_threads(tmp_path):
    alone = {(isa, name): _run(isa, name, args, tmp_path) for isa, name, args in GUESTS}
    results: dict = {}
    errors: list = []

    def worker(key, isa, name, args):
        try:
            results[key] = _run(isa, name, args, tmp_path)
        except Exception as error:  # reported below, with the thread's case
            errors.append((key, error))

    threads = [threading.Thread(target=worker, args=((isa, name, copy), isa, name, args))
               for isa, name, args in GUESTS for copy in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    for (isa, name, _), outcome in results.items():
        assert outcome == alone[(isa, name)], (isa, name)


def test_limits_do_not_leak_between_emulators(tmp_path):
    limited = _run("x86_64", "compute", ["1000"], tmp_path, max_insns=5000)
    full = _run("x86_64", "compute", ["1000"], tmp_path)
    assert limited[0] == 124 and full[0] == 0
    assert full == _run("x86_64", "compute", ["1000"], tmp_path)
