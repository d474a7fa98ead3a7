/*
 * crust's pause: the init process of a pod sandbox.
 *
 * It holds the pod's namespaces open, reaps every child that is reparented to it (it is PID 1 of a
 * shared PID namespace) and exits 0 on SIGTERM or SIGINT. Signals are blocked and taken
 * synchronously with sigwaitinfo(), so no handler runs and nothing is async-signal-unsafe.
 * Built static by build.rs so it runs from a rootfs that holds nothing else.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void reap_all(void) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts("crust-pause 0.1");
        return 0;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        perror("pause: sigprocmask");
        return 1;
    }
    for (;;) {
        int sig = sigwaitinfo(&set, NULL);
        if (sig == SIGCHLD) {
            reap_all();
        } else if (sig == SIGTERM || sig == SIGINT) {
            return 0;
        } else if (sig < 0 && errno != EINTR) {
            perror("pause: sigwaitinfo");
            return 1;
        }
    }
}
