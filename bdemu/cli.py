"""The `bdemu` command line: options -> Emulator, exit statuses, one-line errors."""
from __future__ import annotations

import os
import sys
import traceback

import click

from . import __version__
from .errors import BdemuError, UsageError

RUN_SETTINGS = {"allow_interspersed_args": False, "help_option_names": ["-h", "--help"]}


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    factor = units.get(text[-1:], 1)
    try:
        return int(text[:-1] if text[-1:] in units else text, 0) * factor
    except ValueError:
        raise UsageError(f"invalid size {text!r} (use e.g. 64M)") from None


def _note_debug(ctx, _param, value):
    """Tell main() about --debug: only bdemu's own option counts, never a guest argument."""
    if value and isinstance(ctx.obj, dict):
        ctx.obj["debug"] = True
    return value


def guest_options(function=None, *, output_flags=("--output", "-o")):
    """Options shared by `run` and `record` (SPEC section 3). `record` keeps `-o` for its TRACE."""
    if function is None:
        return lambda f: guest_options(f, output_flags=output_flags)
    decorators = [
        click.option("--plugin", "-p", "plugins", multiple=True, metavar="NAME[,key=value]...",
                     help="Load a plugin: built-in name, file.py[:Class] or module:Class."),
        click.option("--rootfs", metavar="DIR", help="The guest's / is DIR; nothing outside is reachable."),
        click.option("--mount", "mounts", multiple=True, metavar="HOST:GUEST[:ro]",
                     help="Bind the host directory HOST at GUEST inside --rootfs (read-only with :ro)."),
        click.option("--read-only", is_flag=True, help="No guest write reaches a host file (EROFS)."),
        click.option("--net", is_flag=True, help="Allow AF_INET/AF_INET6 sockets (the network); off: EACCES."),
        click.option("--env", "env_set", multiple=True, metavar="K=V", help="Add or override a variable."),
        click.option("--unset-env", "env_unset", multiple=True, metavar="K", help="Remove a variable."),
        click.option("--cwd", metavar="DIR", help="The guest's working directory."),
        click.option("--backdoor-pages", type=int, default=1, show_default=True,
                     help="Size of the backdoor data window in 4 KiB pages (1..65536)."),
        click.option("--backdoor-path", metavar="BASE", help="Serve the seed's user-mode files BASE-control/BASE-data."),
        click.option("--max-insns", type=int, metavar="N", help="Stop after N instructions (exit 124)."),
        click.option("--timeout", type=float, metavar="SECONDS", help="Stop after SECONDS of wall time (exit 124)."),
        click.option("--max-memory", metavar="SIZE", help="Guest mmap/brk beyond SIZE fail with ENOMEM."),
        click.option(*output_flags, "output", metavar="FILE", help="Where plugin output goes (default: stderr; - for stdout)."),
        click.option("--strict", is_flag=True, help="Unsupported syscalls stop the run (exit 125)."),
        click.option("--host-exec", is_flag=True,
                     help="A foreign guest's execve of a program of this machine runs it natively (unconfined)."),
        click.option("--gdb", metavar="[HOST:]PORT",
                     help="Wait for a GDB client (target remote) on PORT, stopped at the first instruction."),
        click.option("--debug", is_flag=True, callback=_note_debug, help="Show Python tracebacks."),
        click.argument("guest"),
        click.argument("guest_args", nargs=-1, type=click.UNPROCESSED),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _startup_environment() -> dict[str, str]:
    """The environment this process was started with (os.environ may have gained entries since)."""
    try:
        with open("/proc/self/environ", "rb") as file:
            entries = file.read().split(b"\0")
    except OSError:
        return dict(os.environ)
    pairs = (entry.partition(b"=") for entry in entries)
    return {os.fsdecode(key): os.fsdecode(value) for key, sep, value in pairs if sep and key}


def _guest_environment() -> dict[str, str]:
    """bdemu's environment, less the LC_CTYPE that Python sets for itself under a C locale
    (PEP 538): a guest started from `env -i` must not find a locale no one gave it."""
    environment = dict(os.environ)
    if environment.get("LC_CTYPE") in ("C.UTF-8", "C.utf8", "UTF-8") \
            and "LC_CTYPE" not in _startup_environment():
        del environment["LC_CTYPE"]
    return environment


def build_emulator(guest, guest_args, plugins, rootfs, env_set, env_unset, cwd, backdoor_pages,
                   backdoor_path, max_memory, output, strict, mounts=(), read_only=False, net=False, gdb=None,
                   host_exec=False):
    from .emulator import Emulator
    from .linux.procnames import publish as publish_name
    from .plugin_loader import parse_spec

    environment = _guest_environment()
    for pair in env_set:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env expects K=V, not {pair!r}")
        environment[key] = value
    for key in env_unset:
        environment.pop(key, None)
    if cwd is not None and rootfs is None and not os.path.isdir(cwd):
        raise UsageError(f"--cwd {cwd!r} is not a directory")
    specs = [parse_spec(text) for text in plugins]
    emu = Emulator(guest, argv=[guest, *guest_args], env=environment, rootfs=rootfs,
                   backdoor_pages=backdoor_pages, cwd=cwd, strict=strict, backdoor_path=backdoor_path,
                   max_memory=_size(max_memory) if max_memory else None,
                   mounts=mounts, read_only=read_only, net=net, host_exec=host_exec)
    if output == "-":
        emu.output = sys.stdout
    elif output:
        try:
            emu.output = open(output, "w")
        except OSError as error:
            raise UsageError(f"cannot write --output {output!r}: {error.strerror}") from None
    # A bdemu command's process is the guest's alone: other guest processes (ps, pidof, killall)
    # see it under the guest's name, as they see forked children.
    emu.kernel.publish_name = True
    publish_name(emu.kernel)
    for name, options in specs:
        emu.add_plugin(name, **options)
    if gdb is not None:
        emu.serve_gdb(gdb)
    return emu


def report(result) -> int:
    if result.reason != "exit" and result.message:
        print(f"bdemu: {result.message}", file=sys.stderr, flush=True)
    return result.exit_code


def finish(emu, result) -> None:
    """End `run` or `record` with the guest's status, once plugin output is closed; a guest that
    exec'd a host program becomes it (bdemu/linux/hostexec.py), so its status is the process's."""
    _close_output(emu)
    if "host_exec" in result.extra:
        result.extra["host_exec"].execute()
    sys.exit(report(result))


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(__version__, "--version", prog_name="bdemu", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx) -> None:
    """bdemu: run Linux ELF guests on Unicorn, trace them with plugins, let them call Python."""
    if ctx.invoked_subcommand is None:  # `bdemu` alone: a usage error, in one line
        raise UsageError(f"missing command ({', '.join(cli.commands)}); see bdemu --help")


@cli.command(context_settings=RUN_SETTINGS)
@guest_options
def run(guest, guest_args, plugins, rootfs, env_set, env_unset, cwd, backdoor_pages, backdoor_path,
        max_insns, timeout, max_memory, output, strict, debug, mounts, read_only, net, gdb, host_exec):
    """Run GUEST with GUEST_ARGS and exit with its status."""
    emu = build_emulator(guest, guest_args, plugins, rootfs, env_set, env_unset, cwd, backdoor_pages,
                         backdoor_path, max_memory, output, strict, mounts, read_only, net, gdb, host_exec)
    _check_limits(max_insns, timeout)
    from .trace.stop import stop_on_signals
    with stop_on_signals(emu):  # Ctrl-C / SIGTERM: 130 / 143, plugins' on_exit still runs
        result = emu.run(max_insns=max_insns, timeout=timeout)
    finish(emu, result)


@cli.command(context_settings=RUN_SETTINGS)
@click.option("-o", "--trace", "trace", required=True, metavar="TRACE", help="The trace file to write (DuckDB).")
@click.option("--insns", is_flag=True, help="Also record every instruction.")
@click.option("--mem", is_flag=True, help="Also record every memory access (per-event hooks: slower).")
@click.option("--regs", is_flag=True, help="Also record register changes per instruction (for Tenet; implies --insns).")
@click.option("--no-blocks", is_flag=True, help="Do not record the blocks table.")
@click.option("--data-bytes", type=int, default=4096, show_default=True, metavar="N",
              help="Bytes of the backdoor data window kept per call.")
@guest_options(output_flags=("--output", "--plugin-output"))
def record(trace, insns, mem, regs, no_blocks, data_bytes, plugins, max_insns, timeout, debug, **guest):
    """Run GUEST like `run` and record what it did into the DuckDB file TRACE."""
    from .plugin_loader import parse_spec
    from .trace.commands import record as record_trace
    _check_limits(max_insns, timeout)
    specs = [parse_spec(text) for text in plugins]
    emu, result = record_trace(lambda: build_emulator(plugins=(), **guest), specs, trace, max_insns, timeout,
                               insns=insns or regs, mem=mem, regs=regs, no_blocks=no_blocks,
                               data_bytes=data_bytes)
    finish(emu, result)


@cli.command()
@click.argument("trace")
@click.option("--top", type=int, default=10, show_default=True, help="How many of the hottest blocks to list.")
def show(trace, top):
    """Summarize a trace: guest, how it ended, counts, hottest blocks, syscalls."""
    from .trace.commands import show as show_trace
    show_trace(trace, top)


@cli.command()
@click.argument("trace")
@click.option("--format", "fmt", required=True, type=click.Choice(["drcov", "tenet", "parquet", "chrome"]))
@click.option("-o", "--output", "out", required=True, metavar="OUT", help="File (directory for parquet).")
def export(trace, fmt, out):
    """Convert a trace for other tools: drcov (Lighthouse), tenet, parquet, chrome (Perfetto)."""
    from .trace.commands import export as export_trace
    export_trace(trace, fmt, out)


def _check_limits(max_insns, timeout) -> None:
    if max_insns is not None and max_insns <= 0:
        raise UsageError("--max-insns must be positive")
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be positive")


def _close_output(emu) -> None:
    output = getattr(emu, "output", None)
    if output is not None and output not in (sys.stderr, sys.stdout):
        output.close()


@cli.command("plugins")
def list_plugins():
    """List the available plugins with their options."""
    from .plugin_loader import available
    for name, cls in available():
        doc = (cls.__doc__ or "").strip().splitlines()
        click.echo(f"{name:12} {doc[0] if doc else ''}")
        for key, (kind, default, text) in cls.options.items():
            click.echo(f"{'':14}{key}={kind.__name__} (default {default!r}): {text}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: every failure becomes one `bdemu: ` line and an exit status."""
    args = sys.argv[1:] if argv is None else argv
    state = {"debug": False}  # set by --debug once click has parsed it
    try:
        return cli.main(args, prog_name="bdemu", standalone_mode=False, obj=state) or 0
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        print("bdemu: aborted", file=sys.stderr)
        return 130
    except click.ClickException as error:
        print(f"bdemu: {error.format_message()}", file=sys.stderr)
        return 2
    except BdemuError as error:
        if state["debug"]:
            traceback.print_exc()
        print(f"bdemu: {error}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        print("bdemu: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug in bdemu: one line unless --debug
        if state["debug"]:
            traceback.print_exc()
        print(f"bdemu: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return 125
