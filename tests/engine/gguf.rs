//! Tiny GGUF files written byte by byte, for tests of what llama.cpp makes of their metadata.

/// A GGUF file with no tensors and only these metadata values: (key, value) where a value is a
/// string, a `u32`, or a `u32` array.
pub fn tiny_gguf(pairs: &[(&str, Meta)]) -> Vec<u8> {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend((pairs.len() as u64).to_le_bytes());
    for (key, value) in pairs {
        bytes.extend((key.len() as u64).to_le_bytes());
        bytes.extend(key.as_bytes());
        match value {
            Meta::Str(text) => {
                bytes.extend(8u32.to_le_bytes());
                bytes.extend((text.len() as u64).to_le_bytes());
                bytes.extend(text.as_bytes());
            }
            Meta::U32(number) => {
                bytes.extend(4u32.to_le_bytes());
                bytes.extend(number.to_le_bytes());
            }
            Meta::U32s(numbers) => {
                bytes.extend(9u32.to_le_bytes());
                bytes.extend(4u32.to_le_bytes());
                bytes.extend((numbers.len() as u64).to_le_bytes());
                numbers.iter().for_each(|n| bytes.extend(n.to_le_bytes()));
            }
        }
    }
    bytes
}

pub enum Meta {
    Str(&'static str),
    U32(u32),
    U32s(&'static [u32]),
}

/// The smallest llama header llama.cpp starts on, with these layers.
pub fn llama_with_layers(layers: u32) -> Vec<u8> {
    tiny_gguf(&[
        ("general.architecture", Meta::Str("llama")),
        ("llama.context_length", Meta::U32(16)),
        ("llama.embedding_length", Meta::U32(16)),
        ("llama.block_count", Meta::U32(layers)),
    ])
}

/// Per-layer expert counts for a model without experts: the metadata checks pass it (they read
/// no arrays), yet llama.cpp asserts on it while loading.
pub fn per_layer_experts() -> Vec<u8> {
    tiny_gguf(&[
        ("general.architecture", Meta::Str("llama")),
        ("llama.context_length", Meta::U32(16)),
        ("llama.embedding_length", Meta::U32(16)),
        ("llama.block_count", Meta::U32(1)),
        ("llama.expert_used_count", Meta::U32s(&[5])),
    ])
}
