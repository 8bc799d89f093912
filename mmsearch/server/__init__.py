"""The HTTP service (`mmsearch serve`): FastAPI over one index, plus clip-retrieval's back-end API.

Importing this package imports FastAPI; `import mmsearch` does not import it.
"""

from mmsearch.server.app import make_app
from mmsearch.server.service import ServiceConfig

__all__ = ["ServiceConfig", "make_app"]
