"""The setting a latency table is measured in: one device, backend, precision, batch size and
thread count. Every row of a LUT names it; a table used for a search holds one."""

from __future__ import annotations

SETTING_COLUMNS = ["device", "backend", "precision", "batch_size", "threads"]


def setting_label(setting: dict) -> str:
    """``cpu-amd-epyc onnxruntime fp32 b1 t1``: the parts the setting has, in one short line."""
    parts = [str(setting[k]) for k in ("device", "backend", "precision") if setting.get(k)]
    parts += [f"b{setting['batch_size']}"] if setting.get("batch_size") else []
    parts += [f"t{setting['threads']}"] if setting.get("threads") else []
    return " ".join(parts)


def on_cpu(setting: dict) -> bool:
    """Whether a table's setting was timed on a CPU: ONNX Runtime runs there, and a host clock times
    CPU work only; a table without ``timing_method`` (an older one) by its device label."""
    if setting.get("backend") == "onnxruntime" or setting.get("timing_method") == "host-clock":
        return True
    return not setting.get("timing_method") and str(setting.get("device") or "").startswith("cpu")
