"""Online feature computation: windows, time decay, interactions and per-key event windows.

Everything here computes the same features offline (over a table, vectorised) and online (one
row or event at a time), with identical results where both exist.

Example:
    >>> from lakefeed.transforms.online import InteractionFeatureBuilder
    >>> InteractionFeatureBuilder().build({"price": 10.0, "qty": 3}, [("price", "qty", "product")])
    {'price_product_qty': 30.0}
"""

from lakefeed.transforms.cache import FeatureCache
from lakefeed.transforms.online.base import OnlineFeatureComputer
from lakefeed.transforms.online.decay import TimeDecayFeatureBuilder
from lakefeed.transforms.online.event_state import EventWindowState
from lakefeed.transforms.online.events import EventWindow
from lakefeed.transforms.online.interactions import InteractionFeatureBuilder
from lakefeed.transforms.online.windows import SlidingWindowAggregator

__all__ = [
    "EventWindow",
    "EventWindowState",
    "FeatureCache",
    "InteractionFeatureBuilder",
    "OnlineFeatureComputer",
    "SlidingWindowAggregator",
    "TimeDecayFeatureBuilder",
]
