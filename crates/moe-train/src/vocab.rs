//! Compact vocabularies for small CPU runs (TRAIN-12): a model trained from
//! scratch on a small corpus only ever sees the GPT-2 ids that occur in it,
//! so its embedding and LM head can hold just those (~14k of 50257 for the
//! demo corpora), which makes the LM head — most of a tiny model's compute —
//! several times cheaper. `<run>/vocab.json` maps model ids back to GPT-2 ids.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Model id ↔ GPT-2 id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocabMap {
    /// `gpt2_ids[model_id]`, ascending.
    pub gpt2_ids: Vec<u32>,
}

impl VocabMap {
    /// The ids occurring in `shards`, ascending.
    pub fn from_shards<'a>(shards: impl IntoIterator<Item = &'a [u16]>) -> Self {
        let mut seen = vec![false; 1 << 16];
        for shard in shards {
            shard.iter().for_each(|&t| seen[t as usize] = true);
        }
        Self {
            gpt2_ids: (0..1u32 << 16).filter(|&i| seen[i as usize]).collect(),
        }
    }

    /// Number of model ids.
    pub fn len(&self) -> usize {
        self.gpt2_ids.len()
    }

    /// True when no id is mapped.
    pub fn is_empty(&self) -> bool {
        self.gpt2_ids.is_empty()
    }

    /// GPT-2 id → model id table (`u16::MAX` for ids that are not mapped).
    pub fn forward_table(&self) -> Vec<u16> {
        let mut table = vec![u16::MAX; 1 << 16];
        for (model_id, &g) in self.gpt2_ids.iter().enumerate() {
            table[g as usize] = model_id as u16;
        }
        table
    }

    /// Rewrites GPT-2 tokens into model ids; `None` if a token is not mapped.
    pub fn to_model(&self, tokens: &[u16]) -> Option<Vec<u16>> {
        let table = self.forward_table();
        tokens
            .iter()
            .map(|&t| Some(table[t as usize]).filter(|&m| m != u16::MAX))
            .collect()
    }

    /// The GPT-2 id of a model id.
    pub fn to_gpt2(&self, model_id: usize) -> Option<u32> {
        self.gpt2_ids.get(model_id).copied()
    }

    /// Writes the map to `path` ([`crate::RunDir::save_vocab`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_string(self).unwrap_or_default())
            .map_err(|e| TrainError::io(path, e))
    }

    /// Reads the map at `path` if there is one ([`crate::RunDir::vocab`]).
    pub fn load(path: &Path) -> Result<Option<Self>> {
        let path = path.to_path_buf();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| TrainError::Checkpoint {
                    path,
                    reason: format!("invalid vocab map: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TrainError::io(&path, e)),
        }
    }
}
