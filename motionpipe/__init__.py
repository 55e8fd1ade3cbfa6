"""motionpipe's Python API: annotate shards, read a run back, and annotate inside a Ray Data pipeline.

    import motionpipe
    result = motionpipe.annotate_shards(["data/shards"], "out/", overrides=["conditions.include=none"])
    rows = motionpipe.read_run("out/")                    # pandas DataFrame, one row per clip
    dataset = motionpipe.read_run_ray("out/")             # ray.data.Dataset of the same rows
    selected = motionpipe.select_rows("out/", "object_motion >= 6 and camera_type == 'static'")  # pyarrow
    annotated = ray.data.read_webdataset("s3://b/shards/").map_batches(
        motionpipe.MotionAnnotator, fn_constructor_kwargs={"overrides": ["conditions.include=none"]}, concurrency=4
    )

The packages behind it: ``motionpipe.pipeline`` (orchestration, CLI), ``motionpipe.stages`` (engine-free
stages), ``motionpipe.schemas`` (the Parquet schema and its units). Heavy modules load on first use.
"""

from __future__ import annotations

from motionpipe.pipeline import __version__
from motionpipe.pipeline.api import MotionAnnotator, annotate_shards, read_run, read_run_ray, select_rows

__all__ = ["MotionAnnotator", "__version__", "annotate_shards", "read_run", "read_run_ray", "select_rows"]
