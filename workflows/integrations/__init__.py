"""How the outside world starts runs and hears back: webhooks, schedules, the
API and its tokens, completion callbacks, and their pages."""
