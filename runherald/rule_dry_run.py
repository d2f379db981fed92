"""The dry run of the alert rules for one run: which rules match, which matcher did not, what each
receiver would be sent (rendered by the notifiers themselves). Nothing is sent.

(skeleton: filled in by the dry-run work)
"""

from __future__ import annotations
