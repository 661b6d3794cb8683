
policyr"[1,2]