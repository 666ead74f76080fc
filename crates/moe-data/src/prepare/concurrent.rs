//! Independent jobs of `prepare`'s last phase (the shards, DATA-19) run on
//! the pool's threads and the calling thread together, the largest first,
//! their results kept in the jobs' order: what a job returns never depends
//! on which thread ran it or when.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::Result;

/// Runs `job(i)` once for each `i` in `0..sizes.len()`, in decreasing
/// `sizes[i]` (ties by index), on `pool`'s threads and the calling thread;
/// returns the results in index order, or the error of the lowest index
/// that failed. After a failure no further job is started.
pub(crate) fn largest_first<T: Send>(
    pool: &rayon::ThreadPool,
    sizes: &[u64],
    job: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(sizes[i]), i));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Mutex<Option<Result<T>>>> = sizes.iter().map(|_| Mutex::new(None)).collect();
    let work = || {
        while !failed.load(Ordering::Relaxed) {
            let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let result = job(i);
            failed.fetch_or(result.is_err(), Ordering::Relaxed);
            *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        }
    };
    pool.in_place_scope(|scope| {
        for _ in 0..pool.current_num_threads() {
            scope.spawn(|_| work());
        }
        work();
    });
    let mut out = Vec::with_capacity(sizes.len());
    let mut first_error = None;
    for slot in results {
        match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(Ok(value)) => out.push(value),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            // Not started: only after a failure.
            None => {}
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DataError;
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    fn failure(i: usize) -> DataError {
        DataError::io(
            PathBuf::from(format!("job{i}")),
            std::io::Error::other("failed"),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        // DATA-19: every job runs exactly once and the results come back
        // in the jobs' order, at any thread count.
        #[test]
        fn data_19_every_job_once_results_in_order(
            sizes in proptest::collection::vec(0u64..1000, 0..24),
            threads in 1usize..4,
        ) {
            let runs: Vec<AtomicUsize> = sizes.iter().map(|_| AtomicUsize::new(0)).collect();
            let out = largest_first(&pool(threads), &sizes, |i| {
                runs[i].fetch_add(1, Ordering::Relaxed);
                Ok(i * 10)
            })
            .unwrap();
            prop_assert_eq!(out, (0..sizes.len()).map(|i| i * 10).collect::<Vec<_>>());
            prop_assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1));
        }

        // DATA-19: with failing jobs the error is that of the lowest index
        // that failed among those run, and a job that fails alone (the
        // largest, run first) is always reported.
        #[test]
        fn data_19_the_first_failure_in_order_is_reported(
            sizes in proptest::collection::vec(0u64..1000, 1..24),
            failing in proptest::collection::vec(any::<bool>(), 24),
            threads in 1usize..4,
        ) {
            let ran = Mutex::new(Vec::new());
            let result = largest_first(&pool(threads), &sizes, |i| {
                ran.lock().unwrap().push(i);
                if failing[i] { Err(failure(i)) } else { Ok(i) }
            });
            let ran = ran.into_inner().unwrap();
            let first_failed = ran.iter().copied().filter(|&i| failing[i]).min();
            match (result, first_failed) {
                (Ok(out), None) => prop_assert_eq!(out.len(), sizes.len()),
                (Err(e), Some(i)) => prop_assert!(e.to_string().contains(&format!("job{i}")), "{e}"),
                (r, f) => prop_assert!(false, "result {:?} with first failure {f:?}", r.map(|v| v.len())),
            }
            // The largest job (ties: the lowest index) is always started first.
            let largest = (0..sizes.len()).max_by_key(|&i| (sizes[i], std::cmp::Reverse(i))).unwrap();
            prop_assert!(ran.contains(&largest));
        }
    }

    // DATA-19: on one pool thread, two jobs run at the same time (the pool's
    // and the calling thread's): each waits until the other has started.
    #[test]
    fn data_19_the_calling_thread_works_beside_the_pool() {
        let started = AtomicUsize::new(0);
        let out = largest_first(&pool(1), &[5, 5], |i| {
            started.fetch_add(1, Ordering::SeqCst);
            let t = std::time::Instant::now();
            while started.load(Ordering::SeqCst) < 2 {
                assert!(t.elapsed().as_secs() < 20, "job {i} ran alone");
                std::thread::yield_now();
            }
            Ok(i)
        })
        .unwrap();
        assert_eq!(out, vec![0, 1]);
    }
}
