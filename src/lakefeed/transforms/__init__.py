"""Feature transforms: fit on tables larger than memory, apply identically offline and online.

Every transformer takes ``columns=[...]`` (or works on the whole input without it, as in
scikit-learn), fits on numpy, pandas, Arrow or a lakefeed ``Table``/``Scan`` (streamed, in
parallel, in bounded memory), transforms batches, and transforms single rows with
:meth:`~FeatureTransformer.transform_row` bit-identically. A :class:`Pipeline` composes them
and saves as a versioned JSON spec that serving loads.

Example:
    >>> import numpy as np, lakefeed.transforms as lt
    >>> lt.StandardScaler().fit_transform(np.array([[0.0], [2.0]])).ravel().tolist()
    [-1.0, 1.0]
"""

from lakefeed.transforms.base import FeatureTransformer
from lakefeed.transforms.buckets import Bucketizer
from lakefeed.transforms.encoders import HashBucket, OneHotEncoder, StringIndexer, stable_hash
from lakefeed.transforms.pipeline import SPEC_VERSION, Pipeline
from lakefeed.transforms.scalers import MinMaxScaler, StandardScaler
from lakefeed.transforms.selection import FeatureNormalizer, FeatureSelector

__all__ = [
    "SPEC_VERSION",
    "Bucketizer",
    "FeatureNormalizer",
    "FeatureSelector",
    "FeatureTransformer",
    "HashBucket",
    "MinMaxScaler",
    "OneHotEncoder",
    "Pipeline",
    "StandardScaler",
    "StringIndexer",
    "stable_hash",
]
