"""What is read and written, and the codecs built from it: the bitstream format (bitstream.py), sgaplus checkpoints
and published state dicts (checkpoints.py), images (images.py), where a codec's weights come from (loading.py:
bundled models, checkpoint files, CompressAI's zoo, codec_for, the codec a model id names) and a user's model class
(model_class.py). It imports the codecs and sgaplus.errors, never the refinement loop, the pipeline or the command
line above it."""
