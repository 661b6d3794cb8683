
policyr
../../etc/passwd.regox