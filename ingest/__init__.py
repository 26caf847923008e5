"""Getting data in: file imports (CSV, Parquet, JSON lines), the demo dataset, and (later) CDC.

May import entities, storage and pyarrow. `ingest/mysql_binlog.py` is the only importer of
pymysqlreplication.
"""
