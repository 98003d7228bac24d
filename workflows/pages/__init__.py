"""The product's pages for workflows and runs: the views, the editor's view data
and the form parsing behind them."""
