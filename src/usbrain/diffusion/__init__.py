"""Diffusion: the noise schedule, paired training objective, samplers and editing guidance."""
