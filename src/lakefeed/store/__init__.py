"""The feature store: feature groups on the lakehouse, point-in-time training data, online serving.

Example:
    >>> import lakefeed as lf, tempfile
    >>> lf.FeatureStore(tempfile.mkdtemp()).list_feature_groups()
    []
"""

from lakefeed.store.feature_store import FeatureStore
from lakefeed.store.groups import FeatureGroup, InsertResult

__all__ = ["FeatureGroup", "FeatureStore", "InsertResult"]
