//! `w2vbert-infer`: audio in, Wav2Vec2-BERT hidden states / IndexTTS2 semantic features out.

fn main() {
    if let Err(msg) = w2vbert::kernels::cpu::check_baseline() {
        eprintln!("error: {msg}");
        std::process::exit(2);
    }
    eprintln!("{}", w2vbert::kernels::cpu::describe());
}
