"""MusicCoCa into a model package: upstream TFLite -> ONNX, or a synthetic stand-in.

``<package>/musiccoca/`` holds::

    musiccoca.json          this module's manifest entry (also returned)
    text_encoder.onnx       ids int32 [1,128], paddings float32 [1,128] -> embedding [1,768]
    audio_preprocessor.onnx audio float32 [1,160000] -> features
    music_encoder.onnx      features -> embedding [1,768]
    vector_quantizer.onnx   embedding [1,768] -> tokens [1,12]
    mapper.onnx             embedding [1,768], noise [1,768] -> mapped [1,768]
                            (optional: upstream's text->audio mapper, when its
                            ``mapper.tflite`` exists and converts)
    spm.model               SentencePiece vocabulary (absent with the byte fallback)

Graph inputs/outputs are renamed to those role names; the TFLite tensors'
own names are kept inside the graph.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import tempfile
from pathlib import Path

from tqdm import tqdm

from onnx_export import tflite_synthetic as synth
from onnx_export.tflite_reader import read_tflite
from onnx_export.tflite_to_onnx import UnsupportedOpError, convert_graph

log = logging.getLogger(__name__)

MANIFEST = "musiccoca.json"

# role -> (upstream TFLite file, ONNX file, input role names, output names)
_ROLES = {
    "text_encoder": ("text_encoder.tflite", "text_encoder.onnx", None, ["embedding"]),
    "audio_preprocessor": ("audio_preprocessor.tflite", "audio_preprocessor.onnx", ["audio"],
                           ["features"]),
    "music_encoder": ("music_encoder.tflite", "music_encoder.onnx", ["features"], ["embedding"]),
    "vector_quantizer": ("pretrained_vector_quantizer.tflite", "vector_quantizer.onnx",
                         ["embedding"], ["tokens"]),
    "mapper": ("mapper.tflite", "mapper.onnx", ["embedding", "noise"], ["mapped"]),
}
OPTIONAL_ROLES = ("mapper",)  # older upstream bundles ship no mapper.tflite
_REQUIRED_ROLES = [r for r in _ROLES if r not in OPTIONAL_ROLES]


def _entry(synthetic: bool, tokenizer: str, source: str, roles: list[str]) -> dict:
    files = {role: _ROLES[role][1] for role in roles}
    if tokenizer == "sentencepiece":
        files["spm"] = "spm.model"
    return {
        "dir": "musiccoca",
        "synthetic": synthetic,
        "source": source,
        "sample_rate": 16000,
        "clip_samples": synth.CLIP_SAMPLES,
        "embedding_dim": synth.EMBED_DIM,
        "rvq_depth": synth.RVQ_DEPTH,
        "codebook_size": synth.CODEBOOK_SIZE,
        "max_text_length": synth.MAX_TEXT_LENGTH,
        "sos_id": 1,
        "tokenizer": tokenizer,
        "files": files,
    }


def _convert_one(role: str, tflite_src: Path | bytes, out_dir: Path) -> None:
    _, onnx_name, in_names, out_names = _ROLES[role]
    graph = read_tflite(tflite_src)
    if role == "text_encoder":
        # upstream tells the two inputs apart by dtype: int32 = ids, float32 = paddings
        dtypes = [graph.tensors[i].dtype.name for i in graph.inputs]
        if sorted(dtypes) != ["float32", "int32"]:
            raise ValueError(f"text encoder inputs: expected one int32 and one float32, got {dtypes}")
        in_names = ["ids" if d == "int32" else "paddings" for d in dtypes]
    if len(graph.outputs) > 1:
        out_names = out_names + [f"output_{i}" for i in range(1, len(graph.outputs))]
    model = convert_graph(graph, input_names=in_names, output_names=out_names,
                          doc=f"MusicCoCa {role}, converted from TFLite by magenta-rt-bridge")
    import onnx

    path = out_dir / onnx_name
    if model.ByteSize() > 1_800_000_000:
        onnx.save(model, str(path), save_as_external_data=True, location=onnx_name + ".data")
    else:
        onnx.save(model, str(path))


def convert_musiccoca(src_dir: Path, out_dir: Path) -> dict:
    """Convert upstream's MusicCoCa TFLite files in ``src_dir`` into ``out_dir``."""
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    needed = [_ROLES[role][0] for role in _REQUIRED_ROLES] + ["spm.model"]
    missing = [n for n in needed if not (src_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"MusicCoCa files missing in {src_dir}: {', '.join(missing)} "
                                "(run `mrt-bridge models download resources`)")
    out_dir.mkdir(parents=True, exist_ok=True)
    roles = list(_REQUIRED_ROLES)
    for role in tqdm(_REQUIRED_ROLES, desc="MusicCoCa TFLite -> ONNX", unit="graph"):
        _convert_one(role, src_dir / _ROLES[role][0], out_dir)
    for role in OPTIONAL_ROLES:
        src = src_dir / _ROLES[role][0]
        if not src.is_file():
            log.info("no %s in %s: the text->audio mapper is unavailable", src.name, src_dir)
            continue
        try:
            _convert_one(role, src, out_dir)
        except UnsupportedOpError as exc:
            log.warning("%s not converted (%s); prompts work without the mapper", src.name, exc)
            continue
        roles.append(role)
    shutil.copyfile(src_dir / "spm.model", out_dir / "spm.model")
    entry = _entry(False, "sentencepiece", "google/magenta-realtime-2 resources/musiccoca", roles)
    (out_dir / MANIFEST).write_text(json.dumps(entry, indent=2) + "\n")
    return entry


def add_musiccoca_to_package(package_dir: Path, resources_dir: Path) -> dict:
    """Convert upstream MusicCoCa into ``<package_dir>/musiccoca``; return the manifest entry.

    ``resources_dir`` is upstream's ``resources`` folder (holding ``musiccoca/``)
    or the ``musiccoca`` folder itself.
    """
    resources_dir = Path(resources_dir)
    src = resources_dir / "musiccoca" if (resources_dir / "musiccoca").is_dir() else resources_dir
    return convert_musiccoca(src, Path(package_dir) / "musiccoca")


# A few hundred words of music vocabulary to train the synthetic SentencePiece model on.
_WORDS = ["ambient", "piano", "soft", "pads", "warm", "analog", "synth", "synthwave", "dark", "retro", "eighties", "drum", "machine", "orchestral", "strings", "brass", "epic", "cinematic", "choir", "battle", "boss", "fight", "tension", "suspense", "calm", "peaceful", "forest", "birds", "flute", "harp", "celtic", "folk", "acoustic", "guitar", "fingerpicked", "flamenco", "spanish", "nylon", "rumba", "jazz", "trio", "upright", "bass", "brushed", "drums", "swing", "bebop", "saxophone", "trumpet", "lofi", "hip", "hop", "chill", "beats", "vinyl", "crackle", "rhodes", "electric", "piano", "funk", "slap", "bass", "disco", "house", "techno", "trance", "dubstep", "wobble", "drum", "and", "bass", "breakbeat", "jungle", "garage", "grime", "trap", "heavy", "metal", "distorted", "guitar", "riff", "shred", "punk", "rock", "indie", "pop", "dreamy", "shoegaze", "reverb", "blues", "slide", "harmonica", "country", "banjo", "fiddle", "bluegrass", "gospel", "organ", "soul", "motown", "rnb", "reggae", "dub", "ska", "afrobeat", "highlife", "kora", "djembe", "tabla", "sitar", "raga", "gamelan", "koto", "shamisen", "taiko", "erhu", "bagpipes", "accordion", "tango", "bandoneon", "bossa", "nova", "samba", "cumbia", "salsa", "mariachi", "classical", "baroque", "harpsichord", "string", "quartet", "cello", "violin", "viola", "sonata", "minimalist", "glitch", "idm", "chiptune", "eight", "bit", "arcade", "video", "game", "underwater", "space", "cosmic", "drone", "noise", "industrial", "gothic", "darkwave", "post", "punk", "new", "wave", "italo", "vaporwave", "city", "pop", "kpop", "jpop", "bright", "happy", "sad", "melancholic", "angry", "aggressive", "mellow", "upbeat", "slow", "fast", "groovy", "driving", "haunting", "mysterious", "triumphant", "heroic", "romantic", "nostalgic", "playful", "spooky", "eerie", "lush", "sparse", "minimal", "dense", "layered", "percussion", "marimba", "vibraphone", "xylophone", "bells", "chimes", "kalimba", "steel", "pan", "ukulele", "mandolin", "lute", "hurdy", "gurdy", "didgeridoo", "throat", "singing", "whistle", "female", "vocals", "male", "vocals", "humming", "whisper", "spoken", "word", "rap", "verse", "chorus", "bridge", "solo", "intro", "outro", "crescendo", "staccato", "legato", "arpeggio", "pizzicato", "tremolo", "vibrato", "glissando", "major", "minor", "modal", "dorian", "phrygian", "lydian", "mixolydian", "pentatonic", "chromatic", "atonal"]


def _train_spm(out_path: Path, seed: int) -> bool:
    """Train a tiny SentencePiece model on ``_WORDS``; False if sentencepiece is missing."""
    try:
        import sentencepiece as spm
    except ImportError:
        log.warning("sentencepiece not installed: synthetic MusicCoCa uses a byte tokenizer")
        return False
    import random

    rnd = random.Random(seed)
    sentences = [" ".join(rnd.sample(_WORDS, 6)) for _ in range(400)] + _WORDS
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=buf, vocab_size=400,
        model_type="unigram", character_coverage=1.0, pad_id=0, bos_id=1, eos_id=2, unk_id=3,
        num_threads=1, hard_vocab_limit=False, minloglevel=2,
    )
    out_path.write_bytes(buf.getvalue())
    return True


def build_synthetic_musiccoca(out_dir: Path, seed: int = 0) -> dict:
    """Write a SYNTHETIC MusicCoCa (random weights, real I/O) to ``out_dir``; return the entry.

    Built as TFLite and converted with the same converter as the real files, so
    the synthetic package exercises the whole conversion path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if _train_spm(out_dir / "spm.model", seed):
        import sentencepiece as spm

        vocab = spm.SentencePieceProcessor(model_file=str(out_dir / "spm.model")).vocab_size()
        tokenizer = "sentencepiece"
    else:
        vocab, tokenizer = 260, "bytes"
    models = {
        "text_encoder": synth.text_encoder(vocab, seed + 1),
        "audio_preprocessor": synth.audio_preprocessor(seed + 2),
        "music_encoder": synth.music_encoder(seed + 3),
        "vector_quantizer": synth.vector_quantizer(seed + 4),
        "mapper": synth.mapper(seed + 5),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for role, data in models.items():
            src = Path(tmp) / _ROLES[role][0]
            src.write_bytes(data)
            _convert_one(role, src, out_dir)
    entry = _entry(True, tokenizer, f"SYNTHETIC random weights (seed {seed}); not MusicCoCa", list(models))
    entry["seed"] = seed
    (out_dir / MANIFEST).write_text(json.dumps(entry, indent=2) + "\n")
    return entry


def record_in_package_manifest(package_dir: Path, entry: dict) -> None:
    """Store ``entry`` as ``manifest.json["musiccoca"]`` of a model package."""
    path = Path(package_dir) / "manifest.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    manifest["musiccoca"] = entry
    path.write_text(json.dumps(manifest, indent=2) + "\n")
