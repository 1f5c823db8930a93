"""Training: HF Trainer wiring, callbacks, regularisers, noise-injected (GO) training."""
