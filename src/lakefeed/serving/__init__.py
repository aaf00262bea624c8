"""The feature server: ``POST /features/{view}``, ``/health``, ``/metrics`` and ``/openapi.json`` over ASGI.

Needs the ``serve`` extra (``pip install 'lakefeed[serve]'``: orjson, uvicorn); ``import lakefeed``
does not import this package. Run it with ``lakefeed serve`` or any ASGI server.
"""

from lakefeed.serving.app import FeatureServer, create_app, openapi_document
from lakefeed.serving.errors import HTTPError

__all__ = ["FeatureServer", "HTTPError", "create_app", "openapi_document"]
