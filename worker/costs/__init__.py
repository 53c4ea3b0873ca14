"""What calls cost: forecasts of the next day and month, and what the current rules would have saved."""
