"""The workflow definition and edits to it: its shape and checks, the editor's
pure edit functions, draft merges, version diffs and starters. No pages, no database."""
