"""Who pays: monthly budgets and their holds, usage and its charts."""
