"""The ``depthshrink`` command: one entry point, one module per subcommand.

Each subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``. User errors
(:class:`DepthshrinkError`) print one line and exit 1; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import DepthshrinkError

# name -> (module under depthshrink.cli, one-line help)
SUBCOMMANDS = {
    "space": ("space", "trace a model's searchable chain and write its chain space (JSON)"),
    "export-bundle": ("export_bundle", "write the ONNX files a device needs to build a latency LUT"),
    "profile-device": ("profile_device", "measure a latency LUT on this machine's CPU or GPU"),
    "lut": ("lut", "work with latency LUT files (merge)"),
    "predictor": ("predictor", "evaluate the latency predictor on a LUT (grouped cross-validation)"),
    "train": ("train", "train a base network (from scratch or --weights) on Fashion-MNIST or synthetic data"),
    "finetune": ("finetune", "train the shrunk network from the base weights, distilling from the original"),
    "merge": ("merge", "write the finetuned network as dense convs (PyTorch and ONNX), verified"),
    "evaluate": ("evaluate", "top-1 accuracy of a checkpoint or merged model on a dataset split"),
    "importance": ("importance", "score each candidate segment: accuracy change with its activations removed"),
    "search": ("search", "choose which activations to drop under a latency budget (exact DP)"),
    "run": ("run", "the whole pipeline (train, profile, importance, search, finetune, merge, measure, report)"),
    "report": ("report", "an HTML page comparing the networks of run folders (accuracy vs throughput, ...)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthshrink",
        description="Remove activations of compact CNNs and merge the convolutions around them, "
                    "chosen against latency measured on the target device.")
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(f"depthshrink.cli.{module_name}")
        except ImportError as exc:  # one broken subcommand must not break the others
            sub.set_defaults(handler=_broken(name, exc))
            continue
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def _broken(name: str, exc: ImportError):
    def run(_args: argparse.Namespace) -> int:
        raise DepthshrinkError(f"subcommand '{name}' is unavailable: {exc}")
    return run


def _version() -> str:
    from .. import __version__
    return f"depthshrink {__version__}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.handler(args) or 0)
        _close_process_group()
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except BrokenPipeError:
        if not _reader_gone():  # another pipe or socket broke: a bug or the system's, keep its traceback
            raise
        # `depthshrink ... | head -1`: the reader of our output has gone, which is no error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's own flush finds a sink
        return 141  # as a shell reports a process killed by SIGPIPE
    except DepthshrinkError as exc:
        print(f"depthshrink {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"depthshrink {args.command}: interrupted", file=sys.stderr)
        return 130


def _reader_gone() -> bool:
    """Whether standard output is a pipe whose reading end is closed (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, ValueError, OSError):  # no poll (Windows), or stdout is no file
        return False


def _close_process_group() -> None:
    """A torchrun rank that exits with its process group alive can abort in gloo's threads
    (SIGABRT, "terminate called without an active exception"): close it after a command that
    succeeded (not after a failure, where another rank may still wait in a collective)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
