/* The seed's user-mode protocol through bdemu.h: run with `bdemu run --backdoor-path BASE`
 * and pass BASE as argv[1]; ping-pong argv[2] times (1000). */
#include <stdlib.h>
#include <bdemu.h>
#include "backdoor_common.h"

static void call(uint64_t cmd) { bdemu_call(cmd); }

int main(int argc, char **argv)
{
    if (argc < 2 || bdemu_init_usermode(argv[1]) != 0) {
        printf("no backdoor files at %s\n", argc > 1 ? argv[1] : "(none)");
        return 1;
    }
    printf("data_size=%llu\n", (unsigned long long)bdemu_data_size());
    return pingpong(call, bdemu_data(), argc > 2 ? atoi(argv[2]) : 1000);
}
