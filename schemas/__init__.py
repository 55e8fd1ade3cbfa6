"""Arrow/Parquet schemas of motionpipe's outputs: defined once, documented with units."""
