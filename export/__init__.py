"""The host side: networks and conv configurations written as ONNX files and profiling bundles
(needs PyTorch), and whole networks timed end to end. The device side (``profiler``) reads bundles
without PyTorch."""
