"""The recipes behind the commands, composed from models, data, strategies, diagnostics and training."""
