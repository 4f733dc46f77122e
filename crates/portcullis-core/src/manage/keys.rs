//! Data keys: status, rotation, re-encryption.

use super::*;

/// A data key, as the management API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataKeyView {
    /// Its id (written in every ciphertext it seals).
    pub id: u32,
    /// Whether new secrets are sealed with it.
    pub active: bool,
    /// The master key that wraps it.
    pub master_key_id: String,
    /// When the key was created.
    pub created_at: Timestamp,
}

/// The state of the background re-encryption.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReencryptionStatus {
    /// `running`, `done` or `failed`.
    pub state: &'static str,
    /// The data key secrets are moved to.
    pub target_key_id: u32,
    /// What was re-sealed so far (when done).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<crate::ReencryptReport>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
}

/// The key ring's state.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    /// The key new secrets are sealed with.
    pub active_key_id: u32,
    /// Every data key.
    pub keys: Vec<DataKeyView>,
    /// The last re-encryption started on this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reencryption: Option<ReencryptionStatus>,
}

impl Core {
    /// The key ring's state.
    pub async fn key_status(&self) -> Result<KeyStatus, ServiceError> {
        let keys = self.stores.keys.data_keys().await?;
        Ok(KeyStatus {
            active_key_id: keys.iter().find(|k| k.active).map_or(0, |k| k.id),
            keys: keys
                .iter()
                .map(|k| DataKeyView {
                    id: k.id,
                    active: k.active,
                    master_key_id: k.master_key_id.clone(),
                    created_at: k.created_at,
                })
                .collect(),
            reencryption: self
                .reencryption
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        })
    }

    /// Adds a data key, makes it active, and re-encrypts existing rows in the background (rows
    /// under the old key stay readable until then).
    pub async fn rotate_keys(&self) -> Result<KeyStatus, ServiceError> {
        let target = self.sealer.rotate().await?;
        let started_at = self.clock.now();
        *self
            .reencryption
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ReencryptionStatus {
            state: "running",
            target_key_id: target,
            report: None,
            error: None,
            started_at,
            finished_at: None,
        });
        if let Some(core) = self.me.upgrade() {
            tokio::spawn(async move {
                let result = crate::reencrypt(&core.sealer, &core.stores).await;
                let finished_at = Some(core.clock.now());
                let status = match result {
                    Ok(report) => {
                        tracing::info!(?report, "re-encryption finished");
                        ReencryptionStatus {
                            state: "done",
                            target_key_id: target,
                            report: Some(report),
                            error: None,
                            started_at,
                            finished_at,
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "re-encryption failed");
                        ReencryptionStatus {
                            state: "failed",
                            target_key_id: target,
                            report: None,
                            error: Some(e.to_string()),
                            started_at,
                            finished_at,
                        }
                    }
                };
                *core
                    .reencryption
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(status);
            });
        }
        self.key_status().await
    }
}
