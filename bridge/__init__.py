"""magenta-rt-bridge: live Magenta RealTime 2 music from ONNX Runtime."""

__version__ = "0.1.0"

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 1_920  # 40 ms at 48 kHz
CHANNELS = 2
FRAME_RATE = 25
TOKENS_PER_FRAME = 12
CODEBOOK_SIZE = 1_024
