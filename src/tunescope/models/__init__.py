"""Model loading (named asset / folder / hub id), architecture layouts, and tiny test models."""
