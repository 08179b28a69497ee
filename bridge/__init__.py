"""magenta-rt-bridge: live Magenta RealTime 2 music from ONNX Runtime."""

__version__ = "0.1.0"

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 1_920  # 40 ms at 48 kHz
FRAME_MS = 1000.0 * FRAME_SAMPLES / SAMPLE_RATE  # the real-time budget of one frame
CHANNELS = 2
FRAME_RATE = SAMPLE_RATE // FRAME_SAMPLES  # 25 frames a second
TOKENS_PER_FRAME = 12
CODEBOOK_SIZE = 1_024
