//! The Wav2Vec2-BERT encoder, one struct per Hugging Face module. (to be written)
