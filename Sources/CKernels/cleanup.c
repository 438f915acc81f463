// Removal of temporary output files when the user interrupts a tool (Ctrl-C)
// or it is terminated: the handler only calls async-signal-safe functions.
//
// The handler runs on one thread of our own, never on a thread that computes:
// oneDNN's JIT GEMM kernels (Debian's 2.6; fixed upstream in 2026, oneDNN
// issue #4845 / PR #4855) point the stack pointer into a heap workspace while
// they run, so a signal frame pushed on a thread inside one is written into
// the heap ("corrupted size vs. prev_size" or a garbled array later; seen here
// when Ctrl-C stopped lora-train mid-step, about one run in fifty; a C loop of
// dnnl_sgemm calls with a no-op handler and a thread sending signals aborts at
// once). Tests/ToolTests/SignalSafetyTests.swift checks the signal masks.
#define _GNU_SOURCE // pthread_setname_np
#include "CKernels.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LT_CLEANUP_SLOTS 256
// Each slot: the temporary file, then (after its NUL) the destination it stands for.
static char *volatile slots[LT_CLEANUP_SLOTS];
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static char *volatile interrupt_note;
static int stderr_is_terminal;

int lt_cleanup_register(const char *path, const char *destination) {
    size_t a = strlen(path), b = strlen(destination);
    char *copy = malloc(a + b + 2);
    if (!copy) return -1;
    memcpy(copy, path, a + 1);
    memcpy(copy + a + 1, destination, b + 1);
    pthread_mutex_lock(&slots_lock);
    for (int i = 0; i < LT_CLEANUP_SLOTS; i++) {
        if (slots[i] == NULL) {
            slots[i] = copy;
            pthread_mutex_unlock(&slots_lock);
            return i;
        }
    }
    pthread_mutex_unlock(&slots_lock);
    free(copy);
    return -1;
}

void lt_cleanup_unregister(int slot) {
    if (slot < 0 || slot >= LT_CLEANUP_SLOTS) return;
    pthread_mutex_lock(&slots_lock);
    char *path = slots[slot];
    slots[slot] = NULL;
    pthread_mutex_unlock(&slots_lock);
    free(path);
}

void lt_cleanup_set_interrupt_note(const char *note) {
    char *copy = note ? strdup(note) : NULL;
    char *old = interrupt_note;
    interrupt_note = copy;
    free(old);
}

static void say(const char *text) {
    size_t n = strlen(text);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, text, n);
        if (w <= 0) return;
        text += w;
        n -= (size_t)w;
    }
}

// A long job that can stop cleanly (lora-train saves a resumable state): the
// first SIGINT only sets a flag it polls between steps; a second one (or
// SIGTERM/SIGHUP) interrupts at once as below.
static volatile sig_atomic_t defer_interrupt;
static volatile sig_atomic_t interrupt_requested;

void lt_cleanup_defer_interrupt(int on) { defer_interrupt = on; }
int lt_interrupt_requested(void) { return interrupt_requested; }

static void on_signal(int sig) {
    if (sig == SIGINT && defer_interrupt && !interrupt_requested) {
        int saved_errno = errno; // the interrupted code may be about to read it
        interrupt_requested = 1;
        say(stderr_is_terminal ? "\r\033[2K\ninterrupt: stopping after this step and saving a resumable state (Ctrl-C again to quit at once)\n"
                               : "interrupt: stopping after this step and saving a resumable state (Ctrl-C again to quit at once)\n");
        errno = saved_errno;
        return;
    }
    // Say what happened to each output, then what was kept (write(2) only: async-signal-safe).
    say(stderr_is_terminal ? "\r\033[2K\ninterrupted" : "interrupted");
    for (int i = 0; i < LT_CLEANUP_SLOTS; i++) {
        char *path = slots[i];
        if (!path) continue;
        unlink(path);
        say(": ");
        say(path + strlen(path) + 1);
        say(" was not written (its unfinished temporary file was removed)");
    }
    if (interrupt_note) {
        say("; ");
        say(interrupt_note);
    }
    say("\n");
    signal(sig, SIG_DFL);
    raise(sig);
}

static void interrupt_signals(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

// The thread the handler runs on: it unblocks the signals every other thread blocks and waits.
static void *receive_signals(void *unused) {
    (void)unused;
    sigset_t set;
    interrupt_signals(&set);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    for (;;) pause();
    return NULL;
}

static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static void install(void) {
    stderr_is_terminal = isatty(STDERR_FILENO);
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_signal;
    // A deferred SIGINT returns to the interrupted code: system calls resume instead of failing with EINTR
    // (Foundation's FileHandle.write traps on that error).
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
    // Blocked on this thread and on every thread it starts from now on (threads inherit the mask: Dispatch's
    // workers, OpenMP's team), so the kernel hands the signals to the receiving thread. OpenBLAS's threads,
    // started when it loaded, may take one too: its kernels keep the stack pointer on the stack.
    sigset_t set;
    interrupt_signals(&set);
    pthread_t receiver;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    // The default stack: a small one is refused (EINVAL) when the libraries' thread-local storage is larger.
    int started = pthread_create(&receiver, &attributes, receive_signals, NULL) == 0;
    pthread_attr_destroy(&attributes);
    if (started) pthread_setname_np(receiver, "lt-signals");
    // Without the receiver, leave the signals where they were rather than unanswered.
    if (started) pthread_sigmask(SIG_BLOCK, &set, NULL);
}

void lt_cleanup_install_signal_handlers(void) { pthread_once(&install_once, install); }
