"""How and where code runs, below everything else: devices, processes, files.

``device`` (names -> torch.device), ``distributed`` (torchrun process groups and collectives),
``fastpaths`` (bf16, channels_last, torch.compile), ``frozen`` (eval mode with frozen
parameters), ``checkpoint`` (atomic, hashed, code-free checkpoint files) and ``rundir``
(claiming an output folder).
"""
