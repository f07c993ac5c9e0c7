"""Regular series, forecasting models and rolling-origin backtests."""
