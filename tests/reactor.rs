//! The reactor's contract, on every backend: `block_on`, `spawn`, `sleep`,
//! `timeout`, cross-thread wakes, and that waiting never spins.

mod helpers;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use connlab::poller::{Backend, Mode};
use connlab::reactor::{self, Config};

#[test]
fn block_on_returns_the_future_output_on_every_backend() {
    for config in helpers::configs() {
        assert_eq!(config.block_on(async { 6 * 7 }).unwrap(), 42, "{config:?}");
        let backend = config.block_on(async { reactor::current_backend() }).unwrap();
        assert_eq!(backend, config.backend);
    }
}

#[test]
fn spawned_tasks_run_concurrently_and_join_handles_yield_their_output() {
    for config in helpers::configs() {
        let order = Rc::new(RefCell::new(Vec::new()));
        let log = order.clone();
        let total = config
            .block_on(async move {
                let mut handles = Vec::new();
                for i in 0..10u64 {
                    let log = log.clone();
                    handles.push(reactor::spawn(async move {
                        // Later tasks sleep less, so they finish first.
                        reactor::sleep(Duration::from_millis(30 - 3 * i)).await;
                        log.borrow_mut().push(i);
                        i
                    }));
                }
                let mut total = 0;
                for handle in handles {
                    total += handle.await;
                }
                total
            })
            .unwrap();
        assert_eq!(total, 45);
        assert_eq!(*order.borrow(), (0..10).rev().collect::<Vec<_>>(), "{config:?}");
        assert_eq!(reactor::stats().tasks_spawned, 10);
        assert_eq!(reactor::stats().live_tasks, 0);
    }
}

#[test]
fn sleep_waits_at_least_its_duration_without_spinning() {
    for config in helpers::configs() {
        let start = Instant::now();
        config.block_on(reactor::sleep(Duration::from_millis(50))).unwrap();
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(50),
            "{config:?}: woke early after {elapsed:?}"
        );
        // A spinning loop would make thousands of waits in 50 ms; a correct
        // one makes one or two (plus one for rounding to whole milliseconds).
        let waits = reactor::stats().waits;
        assert!(waits <= 5, "{config:?}: {waits} waits for one sleep");
    }
}

#[test]
fn sub_millisecond_sleeps_do_not_busy_loop() {
    for config in helpers::configs() {
        config
            .block_on(async {
                for _ in 0..20 {
                    reactor::sleep(Duration::from_micros(300)).await;
                }
            })
            .unwrap();
        let waits = reactor::stats().waits;
        assert!(waits <= 60, "{config:?}: {waits} waits for 20 sub-ms sleeps");
    }
}

#[test]
fn timeout_returns_elapsed_at_the_deadline_and_the_value_when_in_time() {
    for config in helpers::configs() {
        config
            .block_on(async {
                let start = Instant::now();
                let late = reactor::timeout(Duration::from_millis(40), reactor::sleep(Duration::from_secs(10))).await;
                let elapsed = start.elapsed();
                let err = late.unwrap_err();
                assert_eq!(err.duration(), Duration::from_millis(40));
                assert!(elapsed >= Duration::from_millis(40) && elapsed < Duration::from_secs(5));
                let io: std::io::Error = err.into();
                assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);

                let early = reactor::timeout(Duration::from_secs(10), async { 7 }).await;
                assert_eq!(early, Ok(7));
            })
            .unwrap();
    }
}

#[test]
fn a_waker_used_from_another_thread_ends_a_blocked_wait() {
    for config in helpers::configs() {
        let (send, recv) = mpsc::channel::<Waker>();
        let helper = std::thread::spawn(move || {
            let waker = recv.recv().unwrap();
            std::thread::sleep(Duration::from_millis(30));
            waker.wake();
        });
        let mut woken = false;
        let mut send = Some(send);
        let start = Instant::now();
        config
            .block_on(std::future::poll_fn(|cx| {
                if let Some(send) = send.take() {
                    send.send(cx.waker().clone()).unwrap();
                    return Poll::Pending;
                }
                woken = true;
                Poll::Ready(())
            }))
            .unwrap();
        helper.join().unwrap();
        assert!(woken);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(reactor::stats().cross_thread_wakes >= 1, "{config:?}");
    }
}

#[test]
fn yield_now_lets_other_tasks_run() {
    for config in helpers::configs() {
        config
            .block_on(async {
                let flag = Rc::new(RefCell::new(false));
                let set = flag.clone();
                let _detached = reactor::spawn(async move { *set.borrow_mut() = true });
                assert!(!*flag.borrow());
                reactor::yield_now().await;
                assert!(*flag.borrow());
            })
            .unwrap();
    }
}

#[test]
fn tasks_still_running_when_block_on_returns_are_dropped() {
    struct Flag(Rc<RefCell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            *self.0.borrow_mut() = true;
        }
    }
    let dropped = Rc::new(RefCell::new(false));
    let flag = Flag(dropped.clone());
    reactor::block_on(Backend::Epoll, async move {
        let _detached = reactor::spawn(async move {
            let _flag = flag;
            reactor::sleep(Duration::from_secs(3600)).await;
        });
        reactor::yield_now().await;
    })
    .unwrap();
    assert!(*dropped.borrow());
}

#[test]
fn abort_drops_a_task_without_polling_it_again() {
    reactor::block_on(Backend::Epoll, async {
        let handle = reactor::spawn(async {
            reactor::sleep(Duration::from_secs(3600)).await;
        });
        reactor::yield_now().await;
        handle.abort();
        reactor::yield_now().await;
        assert_eq!(reactor::stats().live_tasks, 0);
    })
    .unwrap();
}

#[test]
fn block_on_inside_block_on_is_an_error_not_a_deadlock() {
    let inner = reactor::block_on(Backend::Epoll, async { reactor::block_on(Backend::Epoll, async {}) }).unwrap();
    let err = inner.unwrap_err();
    assert!(err.to_string().contains("inside block_on"), "{err}");
}

#[test]
fn an_unsupported_mode_is_an_error_from_block_on() {
    for backend in helpers::backends() {
        let result = Config::new(backend).mode(Mode::Edge).block_on(async {});
        if backend == Backend::Epoll {
            assert!(result.is_ok());
        } else {
            assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::Unsupported);
        }
    }
}

#[test]
#[should_panic(expected = "outside reactor::block_on")]
fn spawn_outside_a_reactor_panics_with_a_clear_message() {
    drop(reactor::spawn(async {}));
}

#[test]
fn a_signal_arrives_as_a_readable_fd_not_an_interrupt() {
    reactor::block_on(Backend::Epoll, async {
        let signals = reactor::Signals::new(&[libc::SIGUSR1]).unwrap();
        // SAFETY: raise sends SIGUSR1 to this thread only, where it was just
        // blocked, so it stays pending for the signalfd instead of running
        // the default action (terminate).
        let ret = unsafe { libc::raise(libc::SIGUSR1) };
        assert_eq!(ret, 0);
        let got = reactor::timeout(Duration::from_secs(5), signals.recv()).await;
        assert_eq!(got.unwrap().unwrap(), libc::SIGUSR1);
    })
    .unwrap();
}

/// A spawned task's panic used to unwind out of `block_on`, killing every
/// other task with it. Now it ends that task only.
#[test]
fn a_panicking_task_ends_alone_and_the_reactor_goes_on() {
    for config in helpers::configs() {
        let survivor = config
            .block_on(async {
                let _detached = reactor::spawn(async {
                    reactor::yield_now().await;
                    panic!("a bug in one connection's task");
                });
                let steady = reactor::spawn(async {
                    reactor::sleep(Duration::from_millis(5)).await;
                    "still here"
                });
                (steady.await, reactor::stats().tasks_panicked)
            })
            .unwrap();
        assert_eq!(survivor, ("still here", 1), "{config:?}");
    }
}

#[test]
fn awaiting_a_panicked_task_resumes_its_panic_in_the_awaiter() {
    let unwound = std::panic::catch_unwind(|| {
        reactor::block_on(Backend::Epoll, async {
            let child = reactor::spawn(async {
                reactor::yield_now().await;
                panic!("boom in the child");
            });
            child.await;
            unreachable!("the await must not return");
        })
    })
    .unwrap_err();
    assert_eq!(unwound.downcast_ref::<&str>(), Some(&"boom in the child"));
}

#[test]
fn catch_panic_hands_the_panic_over_as_a_value() {
    let (caught, live) = reactor::block_on(Backend::Epoll, async {
        let child = reactor::spawn(async {
            panic!("child {} failed", 7);
        });
        let caught = child.catch_panic().await;
        (caught, reactor::stats().live_tasks)
    })
    .unwrap();
    let payload = caught.unwrap_err();
    // A formatted message is a String, unless the compiler folded it into a &str.
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied());
    assert_eq!(message, Some("child 7 failed"));
    assert_eq!(live, 0, "the panicked task left the slab");
    let ok = reactor::block_on(Backend::Epoll, async {
        reactor::spawn(async { 5 }).catch_panic().await
    })
    .unwrap();
    assert_eq!(ok.unwrap(), 5);
}

/// `connect_timeout=18446744073709551615` (seconds) used to panic with
/// "overflow when adding duration to instant" in the timer code.
#[test]
fn huge_durations_saturate_instead_of_panicking() {
    for config in helpers::configs() {
        let result = config
            .block_on(async {
                let never = reactor::timeout(Duration::MAX, reactor::sleep(Duration::from_secs(u64::MAX)));
                // The far-future timer is real, and a nearer one still fires first.
                let near = reactor::timeout(Duration::from_millis(10), never).await;
                let quick = reactor::timeout(Duration::from_secs(u64::MAX), async { 42 }).await;
                (near.is_err(), quick.unwrap())
            })
            .unwrap();
        assert_eq!(result, (true, 42), "{config:?}");
    }
}
