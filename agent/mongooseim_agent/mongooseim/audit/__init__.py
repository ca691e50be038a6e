"""The operations guide's host checklist: pure parsers of the files that decide it, and the
verdicts drawn from them (`checks`). File IO is in `host`, under an injected root."""
