"""The brinery command line: ``brinery`` and ``python -m brinery``.

Subcommands (each a `Command` in `COMMANDS`; a new one is a new class
added to that list):

- ``show``: load each pickle and pretty-print it, like ``python -m
  pickle``; with the safe loader when `brinery.safe` is installed;
- ``dis``: disassemble, with the options and the output of ``python -m
  pickletools``;
- ``optimize``: write a smaller pickle that loads to the same object;
- ``scan``: report what pickles would import and call, without loading
  them (`brinery.scan`);
- ``opcodes``: the opcode reference.

Every FILE may be ``-`` for standard input and may hold several pickles
one after another: all of them are read, up to the end of the file.
Exit status: 0 on success, 2 on unreadable or malformed input (one line
on stderr per bad file, no traceback) and on usage errors, 1 when the safe
loader refuses a pickle.
"""

import argparse
import importlib
import io
import json
import os
import pprint
import sys
import textwrap

import brinery
from brinery import tools
from brinery._opcodes import OPCODE_BY_BYTE, OPCODE_BY_NAME

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_OUTPUT_CLOSED = 1

STDIN_NAME = "<stdin>"


class BadInput(Exception):
    """Input that cannot be read or processed; str() is the one-line report."""


class Refused(Exception):
    """The safe loader refused a pickle; str() is the one-line report."""


# --------------------------------------------------------------- input

def open_input(name):
    """A seekable binary file for a FILE argument (``-`` is standard input).

    Standard input, and any other stream that cannot seek (a named pipe,
    ``<(command)``), is read whole into memory, so that positions are known
    and the stream can be checked for more pickles.
    """
    try:
        if name == "-":
            return io.BytesIO(sys.stdin.buffer.read())
        f = open(name, "rb")
        if not f.seekable():
            with f:
                return io.BytesIO(f.read())
        return f
    except OSError as exc:
        raise BadInput(exc.strerror or str(exc)) from None


def each_pickle(name):
    """Open FILE `name`; yield it once per pickle, up to its end.

    The consumer reads one pickle from the file each time; an empty file
    is yielded once, so that reading from it reports the missing pickle.
    """
    with open_input(name) as f:
        while True:
            yield f
            if at_end(f):
                return


def add_file_arguments(parser, nargs="+"):
    parser.add_argument("files", nargs=nargs, metavar="FILE",
                        help="pickle file, or - for standard input")


def display_name(name):
    return STDIN_NAME if name == "-" else name


def at_end(f):
    """Whether nothing follows the current position of seekable `f`."""
    if f.read(1):
        f.seek(-1, io.SEEK_CUR)
        return False
    return True


def describe_error(exc):
    """One line saying what went wrong, with brinery's location notes."""
    # The safe loader's end-of-input error is also an EOFError: name it
    # the way pickle users know it.
    name = "EOFError" if isinstance(exc, EOFError) else type(exc).__name__
    text = f"{name}: {exc}" if str(exc) else name
    notes = getattr(exc, "__notes__", None)
    if notes:
        text += " (" + "; ".join(notes) + ")"
    return " ".join(text.split("\n"))


# ------------------------------------------------------------- commands

class Command:
    """A subcommand: its name, help texts, arguments and action.

    `run` returns the exit status; it reports problems with each input by
    calling `report(name, message)` and goes on with the next input.
    """

    name = ""
    summary = ""
    description = ""
    examples = ()

    def add_arguments(self, parser):
        raise NotImplementedError

    def run(self, args, report):
        raise NotImplementedError


def choose_loader(unsafe=False):
    """The function `show` loads with, and a word saying which it is.

    The safe loader, `brinery.safe.load`, when that module is installed
    and has it, unless `unsafe`; otherwise the full unpickler,
    `brinery.load`, which imports and calls whatever the pickle names.
    """
    if not unsafe:
        try:
            safe = importlib.import_module("brinery.safe")
        except ModuleNotFoundError as exc:
            if exc.name != "brinery.safe":
                raise
        else:
            if hasattr(safe, "load"):
                return safe.load, "safe"
    return brinery.load, "unsafe"


class ShowCommand(Command):
    name = "show"
    summary = "load pickles and pretty-print them (like python -m pickle)"
    description = (
        "Load every pickle in each FILE and pretty-print it, as python -m "
        "pickle does. The safe loader (brinery.safe) is used when it is "
        "installed: it refuses pickles that would import or call anything "
        "outside plain data. --unsafe loads with the full unpickler, which "
        "runs whatever code the pickle names: use it only on files you "
        "trust.")
    examples = ("brinery show data.pkl", "cat data.pkl | brinery show -",
                "brinery show arrays.pkl --preset numpy --allow mymod.Point",
                "brinery show --unsafe model.pkl")

    def add_arguments(self, parser):
        add_file_arguments(parser)
        parser.add_argument(
            "--allow", action="extend", nargs="+", default=[],
            metavar="NAME",
            help="safe loader: also allow these globals (module.name or "
                 "module:qualname)")
        parser.add_argument(
            "--preset", action="append", default=[], choices=["numpy"],
            help="safe loader: allow a preset's names")
        parser.add_argument(
            "--unsafe", action="store_true",
            help="load with the full unpickler even when the safe loader is "
                 "available (runs code named in the pickle)")

    def run(self, args, report):
        try:
            load, kind = choose_loader(args.unsafe)
        except ImportError as exc:
            report(None, f"the safe loader brinery.safe does not import: "
                         f"{describe_error(exc)}")
            return EXIT_BAD_INPUT
        if kind == "safe" and (args.allow or args.preset):
            try:
                from brinery.safe import Policy
                policy = Policy(allow=args.allow, presets=args.preset)
            except (ValueError, TypeError) as exc:
                report(None, describe_error(exc))
                return EXIT_BAD_INPUT
            safe_load = load

            def load(file):
                return safe_load(file, policy=policy)
        status = EXIT_OK
        for name in args.files:
            try:
                # Each pickle is loaded on its own, as by successive
                # load() calls: no memo is shared.
                for f in each_pickle(name):
                    try:
                        obj = load(f)
                    except brinery.UnsafePickleError as exc:
                        raise Refused(describe_error(exc)) from None
                    except Exception as exc:
                        raise BadInput(describe_error(exc)) from None
                    pprint.pprint(obj)
            except Refused as exc:
                report(name, f"{exc}; refused by the safe loader (--unsafe "
                             f"loads it anyway: only for trusted files)")
                status = max(status, EXIT_REFUSED)
            except BadInput as exc:
                report(name, str(exc))
                status = EXIT_BAD_INPUT
        return status


class DisCommand(Command):
    name = "dis"
    summary = "disassemble pickles (like python -m pickletools)"
    description = (
        "Print a symbolic disassembly of every pickle in each FILE, checking "
        "the stack, MARK and memo use of each opcode on the way. The output "
        "is that of python -m pickletools, option for option; unlike it, "
        "every pickle of a file is shown, not only the first.")
    examples = ("brinery dis data.pkl", "brinery dis -a -l 2 data.pkl",
                "brinery dis -m -p '--- {name} ---' a.pkl b.pkl",
                "cat data.pkl | brinery dis -")

    def add_arguments(self, parser):
        add_file_arguments(parser)
        parser.add_argument("-o", "--output", metavar="OUT",
                            help="write the disassembly to OUT (default: "
                                 "standard output)")
        parser.add_argument("-m", "--memo", action="store_true",
                            help="preserve the memo between disassemblies")
        parser.add_argument("-l", "--indentlevel", type=int, default=4,
                            metavar="N",
                            help="the number of blanks by which to indent a "
                                 "new MARK level (default: 4)")
        parser.add_argument("-a", "--annotate", action="store_true",
                            help="annotate each line with a short opcode "
                                 "description")
        parser.add_argument("-p", "--preamble", default="==> {name} <==",
                            help="if more than one FILE is given, print "
                                 "this before each disassembly (default: "
                                 "%(default)r)")

    def run(self, args, report):
        try:
            args.preamble.format(name="")
        except (KeyError, IndexError, ValueError) as exc:
            report(None, f"bad --preamble {args.preamble!r}: "
                         f"{describe_error(exc)}")
            return EXIT_BAD_INPUT
        try:
            out = (sys.stdout if args.output in (None, "-")
                   else open(args.output, "w"))
        except OSError as exc:
            report(args.output, exc.strerror or str(exc))
            return EXIT_BAD_INPUT
        try:
            return self._disassemble_all(args, out, report)
        finally:
            if out is not sys.stdout:
                out.close()

    def _disassemble_all(self, args, out, report):
        annotate = 30 if args.annotate else 0
        # As pickletools: the memo is kept across pickles only with -m.
        shared_memo = {} if args.memo else None
        status = EXIT_OK
        for name in args.files:
            if len(args.files) > 1:
                out.write(args.preamble.format(name=display_name(name)) +
                          "\n")
            try:
                for f in each_pickle(name):
                    try:
                        tools.dis(f, out, shared_memo, args.indentlevel,
                                  annotate)
                    except BrokenPipeError:
                        raise       # the output closed, not bad input
                    except Exception as exc:
                        raise BadInput(describe_error(exc)) from None
            except BadInput as exc:
                out.flush()
                report(name, str(exc))
                status = EXIT_BAD_INPUT
        return status


class OptimizeCommand(Command):
    name = "optimize"
    summary = "write a smaller pickle that loads to the same object"
    description = (
        "Drop the memo stores that nothing reads, renumber the memo and "
        "frame the result again (protocol 4+). The output loads to the "
        "same object and is never larger than pickletools.optimize's. A "
        "FILE holding several pickles gives the optimized pickles one after "
        "another. Nothing is written when the input is malformed.")
    examples = ("brinery optimize data.pkl -o small.pkl",
                "cat data.pkl | brinery optimize - -o small.pkl")

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE",
                            help="pickle file, or - for standard input")
        parser.add_argument("-o", "--output", metavar="OUT", default="-",
                            help="where to write the result (default: "
                                 "standard output, when it is not a "
                                 "terminal)")

    def run(self, args, report):
        try:
            with open_input(args.file) as f:
                data = f.read()
            result = b"".join(tools._optimize_all(data))
        except BadInput as exc:
            report(args.file, str(exc))
            return EXIT_BAD_INPUT
        except Exception as exc:
            report(args.file, describe_error(exc))
            return EXIT_BAD_INPUT
        if args.output == "-":
            if sys.stdout.isatty():
                report(None, "refusing to write a pickle to a terminal; "
                             "use -o OUT")
                return EXIT_BAD_INPUT
            sys.stdout.buffer.write(result)
            sys.stdout.buffer.flush()
            return EXIT_OK
        try:
            with open(args.output, "wb") as out:
                out.write(result)
        except OSError as exc:
            report(args.output, exc.strerror or str(exc))
            return EXIT_BAD_INPUT
        return EXIT_OK


class OpcodesCommand(Command):
    name = "opcodes"
    summary = "describe pickle opcodes"
    description = (
        "Without OPCODE, list every opcode: its byte, name, protocol and "
        "summary. With OPCODE (a name such as BINPUT, a one-character code "
        "such as q, or a byte such as 0x71), describe those opcodes in full.")
    examples = ("brinery opcodes", "brinery opcodes MEMOIZE 0x95 q",
                "brinery opcodes --json")

    def add_arguments(self, parser):
        parser.add_argument("opcodes", nargs="*", metavar="OPCODE",
                            help="name, code character or byte value")
        parser.add_argument("--json", action="store_true",
                            help="print the documentation as JSON")

    def run(self, args, report):
        docs = {doc["name"]: doc for doc in tools.opcode_docs()}
        if args.opcodes:
            selected = []
            for word in args.opcodes:
                op = lookup_opcode(word)
                if op is None:
                    report(None, f"unknown opcode {word!r}")
                    return EXIT_BAD_INPUT
                selected.append(docs[op.name])
        else:
            selected = list(docs.values())
        if args.json:
            json.dump(selected, sys.stdout, indent=2)
            print()
        elif args.opcodes:
            print("\n\n".join(format_opcode(doc) for doc in selected))
        else:
            for doc in selected:
                print(f"{doc['code']:#04x} {_code_text(doc):6} "
                      f"{doc['name']:16} proto {doc['protocol']}  "
                      f"{doc['summary']}")
        return EXIT_OK


def lookup_opcode(word):
    """The opcode a user means by `word`: name, code character or byte."""
    if word.upper() in OPCODE_BY_NAME:
        return OPCODE_BY_NAME[word.upper()]
    if len(word) == 1:
        return OPCODE_BY_BYTE.get(ord(word))
    try:
        return OPCODE_BY_BYTE.get(int(word, 0))
    except ValueError:
        return None


def _code_text(doc):
    return repr(chr(doc["code"]))


def format_opcode(doc):
    """The full description of one opcode, from its `opcode_docs` entry."""
    arg = doc["argument"]
    if arg is None:
        argument = "none"
    elif arg["size"] == 1:
        argument = f"{arg['name']}, 1 byte"
    elif isinstance(arg["size"], int):
        argument = f"{arg['name']}, {arg['size']} bytes"
    else:
        argument = f"{arg['name']}, {arg['size']}"
    lines = [
        f"{doc['name']} = {_code_text(doc)} ({doc['code']:#04x}), "
        f"protocol {doc['protocol']}",
        f"  {doc['summary']}",
        f"  argument: {argument}",
        f"  stack: [{', '.join(doc['stack_before'])}] -> "
        f"[{', '.join(doc['stack_after'])}]",
        "",
    ]
    lines += ["  " + line for line in _wrap(doc["description"])]
    if arg is not None:
        lines += ["  " + line for line in _wrap(f"{arg['name']}: "
                                                f"{arg['description']}")]
    return "\n".join(lines)


def _wrap(text):
    return textwrap.wrap(text, 76)


class ScanCommand(Command):
    name = "scan"
    summary = "report what pickles would import and call, without loading"
    description = (
        "Read every pickle in each FILE (also zip files such as PyTorch "
        "checkpoints, .npy/.npz, gzip/bz2/xz) with the safe loader's parser, "
        "without importing or running anything, and report the globals, "
        "calls and persistent IDs it finds, with a verdict from the safe "
        "loader's allow-list: safe, unsafe, malformed or resource. Exit "
        "status: 0 all safe, 1 one unsafe or over the limits, 2 one "
        "malformed or unreadable.")
    examples = ("brinery scan model.pt", "brinery scan --json data.pkl",
                "brinery scan data.pkl --preset numpy --allow mymod.Point")

    def add_arguments(self, parser):
        from brinery import scan
        scan.add_arguments(parser)

    def run(self, args, report):
        from brinery import scan

        def usage_error(message):
            report(None, message)
        return scan.run(args, usage_error)


COMMANDS = [ShowCommand(), DisCommand(), OptimizeCommand(), ScanCommand(),
            OpcodesCommand()]


# ----------------------------------------------------------------- main

def build_parser():
    prog = "brinery"
    examples = "\n".join(f"  {e}" for c in COMMANDS for e in c.examples[:1])
    parser = argparse.ArgumentParser(
        prog=prog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Look inside pickles: show, disassemble, optimize, scan.",
        epilog=(f"examples:\n{examples}\n\n"
                f"'{prog} COMMAND --help' describes a command. FILE may be "
                f"- for standard input\nand may hold several pickles. Exit "
                f"status: 0 ok, 1 refused by the safe loader,\n2 unreadable "
                f"or malformed input."))
    parser.add_argument(
        "--version", action="version",
        version=f"{prog} {brinery.__version__} ({brinery.IMPLEMENTATION} "
                f"implementation, Python {sys.version.split()[0]})")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       title="commands")
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.name, help=command.summary,
            description=textwrap.fill(command.description, 78),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="examples:\n" + "\n".join(f"  {e}"
                                             for e in command.examples))
        command.add_arguments(sub)
        sub.set_defaults(command_object=command)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    command = getattr(args, "command_object", None)
    if command is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    prog = f"{parser.prog} {command.name}"

    def report(name, message):
        sys.stdout.flush()
        where = f"{display_name(name)}: " if name is not None else ""
        print(f"{prog}: {where}{message}", file=sys.stderr)

    try:
        return command.run(args, report)
    except BrokenPipeError:
        # The reader went away (brinery dis big.pkl | head): stop quietly,
        # and keep the interpreter from complaining when it flushes stdout.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OUTPUT_CLOSED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
