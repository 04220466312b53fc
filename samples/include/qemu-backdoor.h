/*
 * qemu-backdoor.h - the 2011 QEMU backdoor guest API, header-only, on top of bdemu.h,
 * so that seed-era guests compile unchanged against bdemu.
 *
 *   qemu_backdoor_init(NULL)  find the device in sysfs, as the seed's library did:
 *                             glob() of /sys/devices/pci*, match vendor 0x1af4 and
 *                             device 0x1004, map <dir>/resource0 and <dir>/resource1.
 *   qemu_backdoor_init(base)  the user-mode files base-control and base-data
 *                             (bdemu --backdoor-path base); a sysfs device directory
 *                             works too (base/resource0, base/resource1).
 *   qemu_backdoor(cmd)        one call of the host's on_backdoor(cmd, data).
 *   BACKDOOR_i8(i), BACKDOOR_i8_v32(i, v): the instruction interface.
 */
#ifndef QEMU_BACKDOOR_H
#define QEMU_BACKDOOR_H

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "bdemu.h"

static inline int qemu_backdoor__check_id(const char *dir, const char *name, unsigned long value)
{
    char path[1024], text[64];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = 0;
    char *end;
    unsigned long found = strtoul(text, &end, 16);
    return (*end == '\n' && found == value) ? 0 : -1;
}

static inline const char *qemu_backdoor__find_device(void)
{
    static char found[1024];
    const char *result = NULL;
    glob_t g;
    if (glob("/sys/devices/pci*/*", GLOB_NOSORT, NULL, &g) != 0)
        return NULL;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        if (qemu_backdoor__check_id(g.gl_pathv[i], "vendor", BDEMU_VENDOR) < 0)
            continue;
        if (qemu_backdoor__check_id(g.gl_pathv[i], "device", BDEMU_DEVICE) < 0)
            continue;
        snprintf(found, sizeof(found), "%s", g.gl_pathv[i]);
        result = found;
        break;
    }
    globfree(&g);
    return result;
}

static inline int qemu_backdoor__sysfs(const char *dir)
{
    char control[1024], data[1024];
    snprintf(control, sizeof(control), "%s/resource0", dir);
    snprintf(data, sizeof(data), "%s/resource1", dir);
    return bdemu__attach(control, BDEMU_PAGE_SIZE, data);
}

/* 0 on success, -1 (errno set by open/mmap) if the device is not there. */
static inline int qemu_backdoor_init(const char *base)
{
    if (base == NULL) {
        const char *dir = qemu_backdoor__find_device();
        return dir ? qemu_backdoor__sysfs(dir) : -1;
    }
    if (bdemu_init_usermode(base) == 0)
        return 0;
    return qemu_backdoor__sysfs(base);
}

static inline int qemu_backdoor_fini(void)
{
    if (bdemu__control == NULL)
        return 0;
    size_t data_size = (size_t)bdemu_data_size();
    munmap(bdemu__data, data_size);
    munmap((void *)bdemu__control, bdemu__two_pages ? 2 * BDEMU_PAGE_SIZE : BDEMU_PAGE_SIZE);
    bdemu__control = NULL;
    bdemu__data = NULL;
    return 0;
}

static inline uint64_t qemu_backdoor_data_size(void) { return bdemu_data_size(); }
static inline void *qemu_backdoor_data(void) { return bdemu_data(); }
static inline void qemu_backdoor(uint64_t cmd) { bdemu_call(cmd); }

#define BACKDOOR_i8(i) BDEMU_I8(i)
#define BACKDOOR_i8_v32(i, v) BDEMU_I8_V32(i, v)

#endif /* QEMU_BACKDOOR_H */
