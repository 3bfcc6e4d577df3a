/*
 * seccomp-exec PROGRAM ARGS...: runs PROGRAM under a seccomp filter close to what systemd builds
 * for the peerix unit, for the hardened-daemon test on machines without systemd as PID 1.
 *
 * Compiled by the test (test/nixos/seccomp.ts) with
 *   allowed-syscalls.h  generated: SystemCallFilter='s calls, `__NR_x,` each inside #ifdef
 *   -DDENY_ERRNO=       SystemCallErrorNumber=
 *   -DALLOWED_FAMILIES= RestrictAddressFamilies= (AF_* constants, comma-separated)
 * and applies, like systemd: SystemCallArchitectures=native (other ABIs are killed), the allow
 * list (everything else fails with DENY_ERRNO), socket() only for the allowed families
 * (EAFNOSUPPORT otherwise), and RestrictNamespaces=yes (unshare/setns fail, clone with a
 * CLONE_NEW* flag fails, clone3 is ENOSYS so libc falls back to clone).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp-exec knows x86_64 and aarch64 only"
#endif

#define CLONE_NEW_ANY (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

static const unsigned allowed[] = {
#include "allowed-syscalls.h"
};
static const unsigned families[] = { ALLOWED_FAMILIES };

#define N_ALLOWED (sizeof allowed / sizeof allowed[0])
#define N_FAMILIES (sizeof families / sizeof families[0])

static struct sock_filter prog[32 + 2 * N_ALLOWED + N_FAMILIES];
static unsigned short len;

static void emit (unsigned short code, unsigned char jt, unsigned char jf, unsigned k) {
  prog[len++] = (struct sock_filter)BPF_JUMP(code, k, jt, jf);
}

#define LOAD(field) emit(BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, field))
#define LOAD_ARG0 emit(BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, args[0]))
#define RET(value) emit(BPF_RET | BPF_K, 0, 0, (value))
/* if A == k fall through to the next instruction, else skip it */
#define IF_EQ(k) emit(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, (k))

int main (int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: seccomp-exec PROGRAM ARGS...\n");
    return 2;
  }
  LOAD(arch);
  IF_EQ(NATIVE_ARCH);
  emit(BPF_JMP | BPF_JA, 0, 0, 1);
  RET(SECCOMP_RET_KILL_PROCESS);
  LOAD(nr);
#ifdef __x86_64__
  /* x32 calls share the architecture value; they are not native. */
  emit(BPF_JMP | BPF_JGE | BPF_K, 0, 1, 0x40000000);
  RET(SECCOMP_RET_KILL_PROCESS);
#endif
  IF_EQ(__NR_unshare); RET(SECCOMP_RET_ERRNO | EPERM);
  IF_EQ(__NR_setns); RET(SECCOMP_RET_ERRNO | EPERM);
#ifdef __NR_clone3
  IF_EQ(__NR_clone3); RET(SECCOMP_RET_ERRNO | ENOSYS);
#endif
  /* clone: flags are the first argument on both architectures. */
  emit(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, __NR_clone);
  LOAD_ARG0;
  emit(BPF_JMP | BPF_JSET | BPF_K, 0, 1, CLONE_NEW_ANY);
  RET(SECCOMP_RET_ERRNO | EPERM);
  /* socket: the family is the first argument. */
  LOAD(nr);
  emit(BPF_JMP | BPF_JEQ | BPF_K, 0, (unsigned char)(N_FAMILIES + 2), __NR_socket);
  LOAD_ARG0;
  for (unsigned i = 0; i < N_FAMILIES; i++) {
    emit(BPF_JMP | BPF_JEQ | BPF_K, (unsigned char)(N_FAMILIES - i), 0, families[i]);
  }
  RET(SECCOMP_RET_ERRNO | EAFNOSUPPORT);
  /* An allowed family lands here, with the number to reload. */
  LOAD(nr);
  for (unsigned i = 0; i < N_ALLOWED; i++) {
    IF_EQ(allowed[i]);
    RET(SECCOMP_RET_ALLOW);
  }
  RET(SECCOMP_RET_ERRNO | DENY_ERRNO);

  struct sock_fprog fprog = { .len = len, .filter = prog };
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) != 0) {
    perror("seccomp-exec: installing the filter");
    return 126;
  }
  execvp(argv[1], argv + 1);
  perror("seccomp-exec: exec");
  return 127;
}
