/* Find the backdoor in sysfs: list the PCI directories, read the identity files,
 * map resource0 twice (both mappings alias one device) and resource1 twice (one RAM),
 * then ping-pong argv[1] times (1000). */
#include <dirent.h>
#include <glob.h>
#include <stdlib.h>
#include <bdemu.h>
#include "backdoor_common.h"

static void call(uint64_t cmd) { bdemu_call(cmd); }

static void show(const char *name)
{
    char path[256], text[64];
    snprintf(path, sizeof(path), BDEMU_SYSFS_DIR "/%s", name);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
    if (fd >= 0)
        close(fd);
    text[n > 0 ? n : 0] = 0;
    printf("%s=%s", name, n > 0 ? text : "(unreadable)\n");
}

int main(int argc, char **argv)
{
    glob_t g;
    if (glob("/sys/devices/pci*/*", 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            printf("glob: %s\n", g.gl_pathv[i]);
        globfree(&g);
    }
    DIR *dir = opendir("/sys/bus/pci/devices");
    struct dirent *entry;
    while (dir && (entry = readdir(dir)))
        if (entry->d_name[0] != '.')
            printf("readdir: %s\n", entry->d_name);
    if (dir)
        closedir(dir);
    show("vendor");
    show("device");
    show("class");
    if (bdemu_init() != 0) {
        printf("no backdoor device in sysfs\n");
        return 1;
    }
    uint64_t size = bdemu_data_size();
    volatile uint64_t *second = bdemu__map(BDEMU_SYSFS_DIR "/resource0", BDEMU_PAGE_SIZE);
    volatile uint8_t *data2 = bdemu__map(BDEMU_SYSFS_DIR "/resource1", size);
    if (!second || !data2 || (void *)second == (void *)bdemu__control) {
        printf("second mapping failed\n");
        return 1;
    }
    printf("data_size=%llu second_control_reads=%llu\n", (unsigned long long)size,
           (unsigned long long)second[0]);
    uint8_t *data = bdemu_data();
    data[0] = 0x77;
    printf("alias data: %#x\n", data2[0]);
    bdemu__store_cmd((volatile uint8_t *)second + 8, 0xa11a5);   /* a call through the second control mapping */
    printf("host wrote through alias: %#x\n", data2[2]);
    return pingpong(call, data, argc > 1 ? atoi(argv[1]) : 1000);
}
