"""Accuracy–throughput reports: pandas tables and matplotlib figures (imported lazily).

``build_report(run_dirs, out_dir)`` (in :mod:`.build`) reads the folders written by
``depthshrink run`` and writes ``out_dir/index.html`` (plain HTML, inline CSS, no scripts),
its PNG figures and ``results.csv``, the combined table. The modules:

- :mod:`.runs`: read a run folder, list the stage files it lacks;
- :mod:`.table`: combine results, hardware utilisation, Pareto flags per measurement setting;
- :mod:`.plots`: accuracy trade-offs, LUT additivity, the latency predictor's parity plot;
- :mod:`.search_plots`: per-segment latency bars and the DP frontier;
- :mod:`.build` and :mod:`.page`: draw what the files allow and write the page.
"""
