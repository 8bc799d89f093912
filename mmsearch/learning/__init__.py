"""Learning from a collection's own captions (`mmsearch tune`): harvest captions, fit the adapter,
train the cross-attention head, gate both on held-out captions, store them in the index folder.

`captions` reads, `adapter` and `head` learn (the head with torch, imported only by `head`),
`tuner` runs the whole and decides. Search applies what was stored (`query/rerank.py`,
`query/head.py`) and never imports this package.
"""

from mmsearch.learning.adapter import AdapterFit, fit_adapter
from mmsearch.learning.captions import Caption, harvest_captions
from mmsearch.learning.tuner import Tuner, TuneReport, recalls, sign_test

__all__ = ["AdapterFit", "Caption", "TuneReport", "Tuner", "fit_adapter", "harvest_captions", "recalls", "sign_test"]
