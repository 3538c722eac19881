"""Logged bandit feedback: the schema, Parquet io, and OBP / Open Bandit Dataset interop."""

from .feedback import LoggedFeedback
from .obp import from_obp, load_obd, to_obp
from .parquet import ParquetLogWriter, load_parquet, save_parquet

__all__ = ["LoggedFeedback", "save_parquet", "load_parquet", "ParquetLogWriter", "to_obp", "from_obp", "load_obd"]
