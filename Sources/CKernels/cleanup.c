// Removal of temporary output files when the user interrupts a tool (Ctrl-C)
// or it is terminated: the handler only calls async-signal-safe functions.
#include "CKernels.h"
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LT_CLEANUP_SLOTS 256
static char *volatile slots[LT_CLEANUP_SLOTS];
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;

int lt_cleanup_register(const char *path) {
    char *copy = strdup(path);
    if (!copy) return -1;
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

static void on_signal(int sig) {
    for (int i = 0; i < LT_CLEANUP_SLOTS; i++) {
        char *path = slots[i];
        if (path) unlink(path);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void lt_cleanup_install_signal_handlers(void) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
}
