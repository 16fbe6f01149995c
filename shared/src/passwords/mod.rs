//! Password hashing: Argon2id in PHC strings, always on a blocking thread.
//!
//! Hashing is CPU- and memory-bound (19 MiB a hash at OWASP's parameters), so it runs on the
//! blocking threads of [`queue`], never on the async runtime, at most one per CPU so a burst of
//! logins cannot exhaust memory. The 19 MiB of working memory are kept and reused
//! ([`MemoryPool`]): allocating them per hash makes the kernel zero fresh pages every time and
//! leaves a copy in the allocator of every thread that ever hashed.

mod queue;

use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::Deserialize;

use queue::WorkQueue;

/// OWASP's recommended minimum for Argon2id: m=19456 KiB, t=2, p=1.
pub const OWASP_M_COST: u32 = 19 * 1024;
pub const OWASP_T_COST: u32 = 2;
pub const OWASP_P_COST: u32 = 1;

/// A hash of a random, forgotten password at the current parameters. Unknown emails are checked
/// against it, so a login costs the same whether or not the account exists. A test keeps its
/// parameters equal to the current ones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$hMPjsP2+UFXKh8PKgX1UyQ$Zrf3niLTF9T/etoGrbosRgKz/wVqLjKaP+DqyFDTexA";

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("stored password hash is not a valid PHC string")]
    MalformedHash,
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("password hashing task failed")]
    Task,
}

/// A password as received. Its `Debug` never shows the value, so it cannot end up in a log.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password is right; `needs_rehash` when the hash predates the current parameters.
    Match {
        needs_rehash: bool,
    },
    Mismatch,
}

/// Hashes and verifies passwords with one set of Argon2id parameters.
#[derive(Debug, Clone)]
pub struct Passwords {
    params: Params,
    queue: Arc<WorkQueue>,
    dummy_hash: Arc<str>,
    memory: Arc<MemoryPool>,
}

/// Argon2 working memory, reused from one computation to the next.
#[derive(Debug, Default)]
struct MemoryPool {
    free: Mutex<Vec<Vec<Block>>>,
}

impl MemoryPool {
    /// Runs `work` with `blocks` blocks of memory; keeps buffers of the usual size for reuse.
    fn with<T>(&self, blocks: usize, usual: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
        let mut buffer = self
            .free
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_default();
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::default());
        }
        let result = work(&mut buffer[..blocks]);
        // An older hash with larger parameters should not pin its memory for good.
        if buffer.len() == usual
            && let Ok(mut free) = self.free.lock()
        {
            free.push(buffer);
        }
        result
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

impl Passwords {
    /// OWASP's parameters, with as many concurrent hashes as there are CPUs.
    pub fn new() -> Self {
        let params = Params::new(OWASP_M_COST, OWASP_T_COST, OWASP_P_COST, None)
            .expect("OWASP parameters are valid");
        Self {
            params,
            queue: Arc::new(WorkQueue::new(parallelism())),
            dummy_hash: DUMMY_HASH.into(),
            memory: Arc::default(),
        }
    }

    /// Other parameters (stronger ones, or old ones in tests). Computes its own dummy hash.
    pub fn with_params(m_cost: u32, t_cost: u32, p_cost: u32) -> Result<Self, PasswordError> {
        let params = Params::new(m_cost, t_cost, p_cost, None)
            .map_err(|e| PasswordError::Hashing(e.to_string()))?;
        let memory = Arc::<MemoryPool>::default();
        let dummy = hash_blocking(
            &params,
            uuid::Uuid::new_v4().to_string().as_bytes(),
            &memory,
        )?;
        Ok(Self {
            params,
            queue: Arc::new(WorkQueue::new(parallelism())),
            dummy_hash: dummy.into(),
            memory,
        })
    }

    /// A new PHC string for `password`, with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<String, PasswordError> {
        let (params, memory) = (self.params.clone(), self.memory.clone());
        let password = password.clone();
        self.run_blocking(move || hash_blocking(&params, password.expose().as_bytes(), &memory))
            .await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no account,
    /// so that both cases take the same time. Without an account the answer is `Mismatch`.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<Verification, PasswordError> {
        let exists = stored.is_some();
        let phc = stored
            .map(Arc::<str>::from)
            .unwrap_or_else(|| self.dummy_hash.clone());
        let password = password.clone();
        let (memory, usual) = (self.memory.clone(), self.params.block_count());
        let matched = self
            .run_blocking(move || {
                verify_blocking(password.expose().as_bytes(), &phc, &memory, usual)
            })
            .await??;
        Ok(match (exists, matched) {
            (true, true) => Verification::Match {
                needs_rehash: !self.is_current(stored.unwrap_or_default()),
            },
            _ => Verification::Mismatch,
        })
    }

    /// Whether `phc` is Argon2id v19 with exactly the current parameters.
    pub fn is_current(&self, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        parsed.algorithm.as_str() == Algorithm::Argon2id.ident().as_str()
            && parsed.version == Some(Version::V0x13.into())
            && params.m_cost() == self.params.m_cost()
            && params.t_cost() == self.params.t_cost()
            && params.p_cost() == self.params.p_cost()
    }

    /// How many Argon2 hashes and verifications this instance has computed.
    pub fn work_done(&self) -> u64 {
        self.queue.jobs_run()
    }

    async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        self.queue.run(work).await.map_err(|_| PasswordError::Task)
    }
}

const SALT_BYTES: usize = 16;
const OUTPUT_BYTES: usize = 32;

fn malformed<E>(_: E) -> PasswordError {
    PasswordError::MalformedHash
}

fn hashing_error(e: impl std::fmt::Display) -> PasswordError {
    PasswordError::Hashing(e.to_string())
}

fn hash_blocking(
    params: &Params,
    password: &[u8],
    memory: &MemoryPool,
) -> Result<String, PasswordError> {
    let mut salt = [0u8; SALT_BYTES];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| PasswordError::Hashing("no randomness".into()))?;
    let mut output = [0u8; OUTPUT_BYTES];
    let blocks = params.block_count();
    memory
        .with(blocks, blocks, |memory| {
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
                .hash_password_into_with_memory(password, &salt, &mut output, memory)
        })
        .map_err(hashing_error)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: params.try_into().map_err(hashing_error)?,
        salt: Some(Salt::new(&salt).map_err(hashing_error)?),
        hash: Some(Output::new(&output).map_err(hashing_error)?),
    };
    Ok(phc.to_string())
}

/// Verification takes its parameters from the PHC string, so old hashes keep working. The
/// comparison of the outputs is constant-time.
fn verify_blocking(
    password: &[u8],
    phc: &str,
    memory: &MemoryPool,
    usual_blocks: usize,
) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(malformed)?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(malformed)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(malformed)?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(malformed)?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(PasswordError::MalformedHash);
    };
    let mut output = vec![0u8; expected.len()];
    memory
        .with(params.block_count(), usual_blocks, |memory| {
            Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
                password,
                salt.as_ref(),
                &mut output,
                memory,
            )
        })
        .map_err(malformed)?;
    Ok(Output::new(&output).map_err(malformed)? == *expected)
}

fn parallelism() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by the reference implementation (argon2-cffi) at OWASP's parameters.
    const KNOWN_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$8CNOl4KW75vJGD2GKl8TWw$DYDkV3bMvotayCUViKaPwhzJaXud7+/dPwr549UgB6c";
    const KNOWN_PASSWORD: &str = "an-old-password-1";
    /// Made by the reference implementation at weaker, older parameters.
    const OLD_PARAMS_HASH: &str = "$argon2id$v=19$m=8192,t=1,p=1$kxT/uXAc7Wjq4NEcegt37g$bj887W72CZDR9KPZbOMSczxGIsmqVt5KzpmKWjse0Rs";
    const OLD_PARAMS_PASSWORD: &str = "Weak-old-params-42!";

    #[tokio::test]
    async fn hashes_are_argon2id_at_owasp_parameters_or_stronger() {
        let passwords = Passwords::new();
        let phc = passwords
            .hash(&Password::new("correct horse battery staple"))
            .await
            .unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(parsed.version, Some(0x13));
        let params = Params::try_from(&parsed).unwrap();
        assert!(params.m_cost() >= 19_456, "{phc}");
        assert!(params.t_cost() >= 2, "{phc}");
        assert!(params.p_cost() >= 1, "{phc}");
        assert!(
            parsed.salt.unwrap().len() >= 16,
            "salt of at least 16 bytes"
        );
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    }

    #[tokio::test]
    async fn each_hash_has_its_own_salt() {
        let passwords = Passwords::new();
        let password = Password::new("same password twice");
        let a = passwords.hash(&password).await.unwrap();
        let b = passwords.hash(&password).await.unwrap();
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn verifies_a_known_phc_string_from_the_reference_implementation() {
        let passwords = Passwords::new();
        let right = passwords
            .verify(&Password::new(KNOWN_PASSWORD), Some(KNOWN_HASH))
            .await;
        assert_eq!(
            right.unwrap(),
            Verification::Match {
                needs_rehash: false
            }
        );
        let wrong = passwords
            .verify(&Password::new("an-old-password-2"), Some(KNOWN_HASH))
            .await;
        assert_eq!(wrong.unwrap(), Verification::Mismatch);
    }

    #[tokio::test]
    async fn round_trip() {
        let passwords = Passwords::new();
        let password = Password::new("Tr0ub4dor&3-glacier-moth");
        let phc = passwords.hash(&password).await.unwrap();
        assert_eq!(
            passwords.verify(&password, Some(&phc)).await.unwrap(),
            Verification::Match {
                needs_rehash: false
            }
        );
    }

    #[tokio::test]
    async fn older_parameters_ask_for_a_rehash() {
        let passwords = Passwords::new();
        let result = passwords
            .verify(&Password::new(OLD_PARAMS_PASSWORD), Some(OLD_PARAMS_HASH))
            .await
            .unwrap();
        assert_eq!(result, Verification::Match { needs_rehash: true });
        assert!(!passwords.is_current(OLD_PARAMS_HASH));
        assert!(!passwords.is_current("$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA"));
        assert!(passwords.is_current(KNOWN_HASH));
    }

    #[tokio::test]
    async fn without_an_account_the_answer_is_mismatch_even_for_the_dummy_password() {
        let passwords = Passwords::new();
        let result = passwords.verify(&Password::new(""), None).await.unwrap();
        assert_eq!(result, Verification::Mismatch);
    }

    #[test]
    fn the_dummy_hash_uses_the_current_parameters() {
        // Otherwise a login for an unknown email would take a different time than a real one.
        assert!(Passwords::new().is_current(DUMMY_HASH));
    }

    #[tokio::test]
    async fn malformed_stored_hashes_are_an_error_not_a_match() {
        let passwords = Passwords::new();
        let result = passwords
            .verify(&Password::new("x"), Some("not-a-phc-string"))
            .await;
        assert!(matches!(result, Err(PasswordError::MalformedHash)));
    }

    #[tokio::test]
    async fn working_memory_is_reused_not_reallocated() {
        let passwords = Passwords::new();
        let password = Password::new("correct horse battery staple");
        let hashes = futures_hashes(&passwords, &password, 8).await;
        assert!(hashes.iter().all(|h| passwords.is_current(h)));
        let kept = passwords.memory.free.lock().unwrap().len();
        assert!(kept >= 1 && kept <= parallelism(), "{kept} buffers kept");
        // Verifying an older, smaller hash borrows a buffer and keeps the usual ones.
        passwords
            .verify(&Password::new(OLD_PARAMS_PASSWORD), Some(OLD_PARAMS_HASH))
            .await
            .unwrap();
        let sizes: Vec<usize> = passwords
            .memory
            .free
            .lock()
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect();
        assert!(
            sizes
                .iter()
                .all(|&len| len == passwords.params.block_count()),
            "{sizes:?}"
        );
    }

    async fn futures_hashes(passwords: &Passwords, password: &Password, n: usize) -> Vec<String> {
        let mut tasks = Vec::new();
        for _ in 0..n {
            let (passwords, password) = (passwords.clone(), password.clone());
            tasks.push(tokio::spawn(async move {
                passwords.hash(&password).await.unwrap()
            }));
        }
        let mut hashes = Vec::new();
        for task in tasks {
            hashes.push(task.await.unwrap());
        }
        hashes
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let shown = format!("{:?}", Password::new("hunter2-secret"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
