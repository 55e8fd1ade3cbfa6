from pathlib import Path

import pytest

from motionpipe.schemas.metadata import (
    COLUMNS,
    SCHEMA_VERSION,
    SPEED_UNIT,
    describe_columns,
    metadata_schema,
    rows_to_table,
)


def test_every_column_is_documented_and_speeds_carry_their_unit():
    schema = metadata_schema()
    assert schema.metadata[b"motionpipe.schema_version"].decode() == SCHEMA_VERSION
    for column in COLUMNS:
        field = schema.field(column.name)
        assert field.metadata[b"doc"]
        if column.name.startswith("flow_") and column.name not in ("flow_backend", "flow_pairs"):
            assert field.metadata[b"unit"].decode() == SPEED_UNIT
    assert "| `flow_mean` |" in describe_columns()


def test_rows_fill_missing_columns_with_null_and_reject_unknown_ones():
    row = {"key": "k", "shard": "s", "status": "error", "error": "decode:empty"}
    row |= {"pipeline_version": "0", "config_hash": "h"}
    table = rows_to_table([row])
    assert table.num_rows == 1 and table.column("flow_mean").to_pylist() == [None]
    with pytest.raises(KeyError, match="flow_meen"):
        rows_to_table([row | {"flow_meen": 1.0}])
    with pytest.raises(ValueError, match="lacks required columns"):
        rows_to_table([row | {"key": None}])


def test_readme_documents_the_schema_as_defined():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert describe_columns() in readme


def test_readme_documents_the_condition_arrays():
    from motionpipe.schemas.conditions import describe_condition_arrays

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert describe_condition_arrays() in readme
