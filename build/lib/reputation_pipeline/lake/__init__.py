"""The lake: a local folder or an S3 prefix behind one small storage interface."""
from reputation_pipeline.lake.store import LakeStore, LocalStore, S3Store, open_lake

__all__ = ["LakeStore", "LocalStore", "S3Store", "open_lake"]
