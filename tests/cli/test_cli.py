"""The command line: help without extras, the space subcommand, one-line errors, nothing written on failure."""

import json
import os
import subprocess
import sys

import pytest
import torch

from depthshrink.cli.main import SUBCOMMANDS, main

BLOCK_EXTRAS = ("import sys\n"
                "for name in ('onnxruntime', 'matplotlib', 'sklearn', 'tensorrt', 'pycuda'):\n"
                "    sys.modules[name] = None\n")


def _run(*args):
    return subprocess.run([sys.executable, "-c", BLOCK_EXTRAS + "from depthshrink.cli.main import main\n"
                           "sys.exit(main(sys.argv[1:]))", *args], capture_output=True, text=True)


@pytest.mark.parametrize("command", [[]] + [[name] for name in SUBCOMMANDS])
def test_help_works_without_optional_extras(command):
    result = _run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: depthshrink" in result.stdout


def test_space_writes_the_contract(tmp_path, capsys):
    out = tmp_path / "space.json"
    assert main(["space", "--model", "mobilenet_v2_small", "--width-mult", "0.5", "--resolution", "28",
                 "--in-channels", "1", "--num-classes", "10", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["format"] == "depthshrink.space/1"
    assert data["model"]["name"] == "mobilenet_v2_small" and data["model"]["in_channels"] == 1
    assert len(data["layers"]) == 50 and len(data["sites"]) == 49
    assert "50 layers" in capsys.readouterr().out


def test_space_takes_a_factory_and_weights(tmp_path):
    from depthshrink.models import build_model

    model = build_model("tiny_mobilenet")
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "space.json"
    assert main(["space", "--model", "depthshrink.models.mobilenetv2:MobileNetV2", "--width-mult", "0.35",
                 "--resolution", "64", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["model"]["class"] == "MobileNetV2"
    assert main(["space", "--model", "tiny_mobilenet", "--weights", str(tmp_path / "w.pt"),
                 "--resolution", "16", "--out", str(out)]) == 0
    torch.save(build_model("mobilenet_v2_small").state_dict(), tmp_path / "other.pt")
    assert main(["space", "--model", "tiny_mobilenet", "--weights", str(tmp_path / "other.pt"),
                 "--resolution", "16", "--out", str(out)]) == 1


@pytest.mark.parametrize("args,message", [
    (["--model", "resnet50", "--resolution", "224"], "unknown model 'resnet50'; known models: "),
    (["--model", "mobilenet_v2", "--resolution", "16"], "use at least 32"),
    (["--model", "mobilenet_v2_small", "--resolution", "4"], "use at least 8"),
    (["--model", "tiny_mobilenet", "--resolution", "16", "--weights", "missing.pt"], "weights file not found"),
    (["--model", "mobilenet_v2", "--resolution", "32", "--width-mult", "1e308"],  # OverflowError's traceback
     "mobilenet_v2 cannot be built with --width-mult 1e+308: OverflowError"),
    (["--model", "mobilenet_v2", "--resolution", "32", "--width-mult", "1e20"],  # torch's TypeError
     "mobilenet_v2 cannot be built with --width-mult 1e+20: TypeError: empty(): argument 'size'"),
])
def test_user_errors_are_one_line_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "space.json"
    result = _run("space", *args, "--out", str(out))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not out.exists()


def test_unwritable_output_is_a_user_error(tmp_path):
    result = _run("space", "--model", "tiny_mobilenet", "--resolution", "16",
                  "--out", str(tmp_path / "no" / "such" / "space.json"))
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_output_piped_to_a_reader_that_has_gone_is_no_traceback(tmp_path):
    """``depthshrink lut merge ... | head -1`` ended in a BrokenPipeError traceback."""
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the command prints
    result = subprocess.run([sys.executable, "-m", "depthshrink.cli.main", "space", "--model", "tiny_mobilenet",
                             "--resolution", "16", "--out", str(tmp_path / "space.json")],
                            stdout=write, stderr=subprocess.PIPE, text=True)
    os.close(write)
    assert result.returncode == 141 and result.stderr == "", result.stderr
    assert (tmp_path / "space.json").exists()


def test_a_broken_pipe_that_is_not_standard_output_keeps_its_traceback(tmp_path, monkeypatch, capsys):
    """Exit 141 in silence is for a reader of our output that has gone; another broken pipe is a bug's."""
    import depthshrink.cli.space as space_command
    from depthshrink.cli.main import main

    def broken(args):
        raise BrokenPipeError("a worker's pipe")

    monkeypatch.setattr(space_command, "run", broken)
    with pytest.raises(BrokenPipeError, match="a worker's pipe"):
        main(["space", "--model", "tiny_mobilenet", "--resolution", "16", "--out", str(tmp_path / "s.json")])
