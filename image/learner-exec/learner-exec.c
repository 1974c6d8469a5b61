/*
 * learner-exec: one exec's process, started by the agent ahead of the request that will use it
 * (agent/exec/spare-process.ts). Usage, as root with an empty environment:
 *
 *     learner-exec UID GID [CGROUP_PROCS_FILE...]
 *
 * 1. As root: writes its own pid to each cgroup.procs file (root's files: a learner process can never move itself).
 * 2. Waits for its command on fd 3, read to the end of the stream, then closes fd 3. The command is NUL-terminated
 *    strings: the folder, "1" when the caller writes stdin ("0": stdin becomes /dev/null), the number of variables,
 *    the variables ("NAME=value"), then argv. An empty stream (the agent closed the spare) exits 0.
 * 3. Becomes the learner: no supplementary groups, GID, UID (real, effective and saved), no-new-privileges. While it
 *    waits it stays root, so no learner process can signal or ptrace it.
 * 4. As the learner: changes to the folder, looks argv[0] up in the command's PATH and execs it with exactly the
 *    command's variables; a file without a #! line runs with /bin/sh, as a shell would.
 *
 * Failures print what run-process.ts prints for a process it cannot start, "NAME: command not found" (127) or
 * "NAME: permission denied" (126), or a line about the step that failed (126).
 *
 * It is linked statically against musl: no dynamic loader runs, so nothing in any environment (LD_PRELOAD,
 * GLIBC_TUNABLES, GCONV_PATH, LOCPATH...) can load code into it while it is root, and its start costs no loader work.
 * Its own environment is never read: the command's variables are data it passes to execve, only after the switch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

enum { NOT_EXECUTABLE = 126, NOT_FOUND = 127, COMMAND_FD = 3 };

/* What a shell searches when the command's variables have no PATH. */
static const char DEFAULT_PATH[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

static void say(const char *a, const char *b, const char *c) {
  /* One write per line: a pipe reader sees the whole line at once. */
  char line[4096];
  snprintf(line, sizeof line, "%s%s%s\n", a, b, c);
  ssize_t ignored = write(2, line, strlen(line));
  (void)ignored;
}

static void fail(const char *what, const char *detail) {
  say("learner-exec: ", what, detail);
  exit(NOT_EXECUTABLE);
}

static unsigned parse_id(const char *text) {
  char *end;
  errno = 0;
  unsigned long value = strtoul(text, &end, 10);
  if (errno || *text == '\0' || *end != '\0' || value > 0xfffffffeUL) fail("bad id: ", text);
  return (unsigned)value;
}

static void join_cgroup(const char *procs_file) {
  char pid[24];
  int length = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  int fd = open(procs_file, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, pid, (size_t)length) != length) fail("cannot join the cgroup: ", strerror(errno));
  close(fd);
}

/* The whole stream on fd 3, NUL-terminated once more so that a truncated last string still ends. */
static char *read_command(size_t *size) {
  size_t capacity = 1 << 16, used = 0;
  char *buffer = malloc(capacity + 1);
  for (;;) {
    if (!buffer) fail("out of memory", "");
    if (used == capacity) buffer = realloc(buffer, (capacity *= 2) + 1);
    if (!buffer) fail("out of memory", "");
    ssize_t got = read(COMMAND_FD, buffer + used, capacity - used);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail("cannot read the command: ", strerror(errno));
    if (got == 0) break;
    used += (size_t)got;
  }
  close(COMMAND_FD);
  buffer[used] = '\0';
  *size = used;
  return buffer;
}

/* Splits the stream into its strings: a NULL-terminated array. */
static char **split(char *buffer, size_t size, size_t *count) {
  size_t n = 0;
  for (size_t i = 0; i < size; i++) n += buffer[i] == '\0';
  char **strings = calloc(n + 1, sizeof *strings);
  if (!strings) fail("out of memory", "");
  char *next = buffer;
  for (size_t i = 0; i < n; i++) {
    strings[i] = next;
    next += strlen(next) + 1;
  }
  *count = n;
  return strings;
}

static void become_learner(uid_t uid, gid_t gid) {
  if (getuid() != uid || getgid() != gid) {
    if (setgroups(0, NULL) != 0) fail("cannot clear the groups: ", strerror(errno));
    if (setresgid(gid, gid, gid) != 0) fail("cannot set the gid: ", strerror(errno));
    if (setresuid(uid, uid, uid) != 0) fail("cannot set the uid: ", strerror(errno));
  }
  uid_t r, e, s;
  gid_t rg, eg, sg;
  if (getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid) fail("the uid did not change", "");
  if (getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid) fail("the gid did not change", "");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("cannot set no-new-privileges: ", strerror(errno));
}

/* execve, and for a file the kernel cannot run (no #! line) /bin/sh with it, as execvp and shells do. */
static void run(const char *file, char **argv, char **envp, size_t argc) {
  execve(file, argv, envp);
  if (errno != ENOEXEC) return;
  char **shell_argv = calloc(argc + 2, sizeof *shell_argv);
  if (!shell_argv) return;
  shell_argv[0] = "/bin/sh";
  shell_argv[1] = (char *)file;
  for (size_t i = 1; i < argc; i++) shell_argv[i + 1] = argv[i];
  execve("/bin/sh", shell_argv, envp);
  errno = ENOEXEC;
}

static int is_directory(const char *path) {
  struct stat info;
  return stat(path, &info) == 0 && S_ISDIR(info.st_mode);
}

/* Tries each folder of PATH (an empty entry is the current folder); returns only when none could run it. */
static void run_from_path(const char *path, char **argv, char **envp, size_t argc, int *denied, int *other) {
  size_t name_length = strlen(argv[0]);
  char *candidate = malloc(strlen(path) + name_length + 2);
  if (!candidate) fail("out of memory", "");
  for (const char *dir = path;; dir++) {
    const char *end = strchrnul(dir, ':');
    size_t dir_length = (size_t)(end - dir);
    if (dir_length == 0) {
      memcpy(candidate, argv[0], name_length + 1);
    } else {
      memcpy(candidate, dir, dir_length);
      candidate[dir_length] = '/';
      memcpy(candidate + dir_length + 1, argv[0], name_length + 1);
    }
    run(candidate, argv, envp, argc);
    /* A folder of that name is not a command (a shell's lookup skips it); ENOENT and the like: try the next. */
    if (errno == EACCES && !is_directory(candidate)) *denied = 1;
    else if (errno != EACCES && errno != ENOENT && errno != ENOTDIR && errno != ELOOP && errno != ENAMETOOLONG && errno != ESTALE)
      *other = errno;
    if (*end == '\0') break;
    dir = end;
  }
}

int main(int argc, char **argv) {
  if (argc < 3) fail("usage: learner-exec UID GID [CGROUP_PROCS_FILE...]", "");
  uid_t uid = parse_id(argv[1]);
  gid_t gid = parse_id(argv[2]);
  for (int i = 3; i < argc; i++) join_cgroup(argv[i]);

  size_t size, count;
  char *buffer = read_command(&size);
  if (size == 0) return 0;
  char **strings = split(buffer, size, &count);
  char *end;
  unsigned long env_count = count >= 3 ? strtoul(strings[2], &end, 10) : 0;
  if (count < 4 || *strings[2] == '\0' || *end != '\0' || env_count > count - 4) fail("malformed command", "");
  const char *folder = strings[0];
  char **command = strings + 3 + env_count; /* NULL-terminated by split */
  size_t command_argc = count - 3 - env_count;
  char *path = (char *)DEFAULT_PATH;
  for (unsigned long i = 0; i < env_count; i++)
    if (strncmp(strings[3 + i], "PATH=", 5) == 0) path = strings[3 + i] + 5;
  /* The variables move one slot down, over the parsed count, so that a NULL can end them before argv. */
  char **envp = strings + 2;
  memmove(envp, strings + 3, env_count * sizeof *envp);
  envp[env_count] = NULL;

  if (strcmp(strings[1], "1") != 0) {
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) < 0) fail("cannot open /dev/null: ", strerror(errno));
    if (null != 0) close(null);
  }
  become_learner(uid, gid);
  if (chdir(folder) != 0) {
    say(folder, ": cannot enter the folder: ", strerror(errno));
    return NOT_EXECUTABLE;
  }

  int denied = 0, other = 0;
  if (strchr(command[0], '/')) {
    run(command[0], command, envp, command_argc);
    if (errno == ENOENT || errno == ENOTDIR) denied = 0;
    else if (errno == EACCES) denied = 1;
    else other = errno;
  } else {
    run_from_path(path, command, envp, command_argc, &denied, &other);
  }
  if (other) say(command[0], ": ", strerror(other));
  else say(command[0], denied ? ": permission denied" : ": command not found", "");
  return other || denied ? NOT_EXECUTABLE : NOT_FOUND;
}
